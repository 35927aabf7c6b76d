"""The configured payment gateway, chosen by the PAYMENT_GATEWAY setting (a dotted path)."""

from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .base import PaymentGateway


@cache
def _load(path: str) -> PaymentGateway:
    try:
        gateway_class = import_string(path)
    except ImportError as error:
        raise ImproperlyConfigured(
            f"PAYMENT_GATEWAY={path!r} cannot be imported ({error}). Use "
            "billing.gateways.fake.FakeGateway or billing.gateways.stripe.StripeGateway."
        ) from error
    gateway = gateway_class()
    if not isinstance(gateway, PaymentGateway):
        raise ImproperlyConfigured(f"PAYMENT_GATEWAY={path!r} is not a PaymentGateway.")
    return gateway


def get_gateway() -> PaymentGateway:
    """Return the configured gateway, built once per PAYMENT_GATEWAY value."""
    return _load(settings.PAYMENT_GATEWAY)
