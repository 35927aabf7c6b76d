from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class OdooImportConfig(AppConfig):
    name = "odoo_import"
    verbose_name = _("Odoo import")
