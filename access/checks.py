from django.core import checks
from django.core.exceptions import ImproperlyConfigured


@checks.register()
def check_access_backend(app_configs, **kwargs):
    """Fail start-up when ACCESS_BACKEND cannot be loaded or lacks its settings."""
    from .backends import get_backend

    try:
        backend = get_backend()
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), id="access.E001")]
    return [
        checks.Error(
            problem, hint="Set it in the environment (see .env.example).", id="access.E002"
        )
        for problem in backend.configuration_problems()
    ]
