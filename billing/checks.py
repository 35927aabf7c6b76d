from django.core import checks
from django.core.exceptions import ImproperlyConfigured


@checks.register()
def check_payment_gateway(app_configs, **kwargs):
    """Fail start-up when PAYMENT_GATEWAY cannot be loaded or lacks its settings."""
    from .gateways import get_gateway

    try:
        gateway = get_gateway()
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), id="billing.E001")]
    return [
        checks.Error(
            problem, hint="Set it in the environment (see .env.example).", id="billing.E002"
        )
        for problem in gateway.configuration_problems()
    ]


@checks.register(deploy=True)
def check_real_gateway(app_configs, **kwargs):
    """Warn when production would take payments through the fake gateway."""
    from .gateways import get_gateway

    try:
        gateway = get_gateway()
    except ImproperlyConfigured:
        return []  # check_payment_gateway reports it
    if gateway.name != "fake":
        return []
    return [
        checks.Warning(
            "PAYMENT_GATEWAY is the fake gateway, which takes no real money.",
            hint="Set PAYMENT_GATEWAY=billing.gateways.stripe.StripeGateway in production.",
            id="billing.W001",
        )
    ]
