"""The configured access backend, chosen by the ACCESS_BACKEND setting (a dotted path)."""

from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .base import AccessBackend


@cache
def _load(path: str) -> AccessBackend:
    try:
        backend_class = import_string(path)
    except ImportError as error:
        raise ImproperlyConfigured(
            f"ACCESS_BACKEND={path!r} cannot be imported ({error}). Use "
            "access.backends.tracking.TrackingBackend or access.backends.salto.SaltoBackend."
        ) from error
    backend = backend_class()
    if not isinstance(backend, AccessBackend):
        raise ImproperlyConfigured(f"ACCESS_BACKEND={path!r} is not an AccessBackend.")
    return backend


def get_backend() -> AccessBackend:
    """Return the configured backend, built once per ACCESS_BACKEND value."""
    return _load(settings.ACCESS_BACKEND)
