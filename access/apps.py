from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AccessConfig(AppConfig):
    name = "access"
    verbose_name = _("Door access")

    def ready(self):
        from . import checks, receivers  # noqa: F401  (registers checks and receivers)
