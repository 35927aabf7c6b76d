from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BackupRestoreConfig(AppConfig):
    name = "backup_restore"
    verbose_name = _("Backups")
