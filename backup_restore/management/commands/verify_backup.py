from pathlib import Path

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from backup_restore.interrupts import command_errors
from backup_restore.services import describe_contents, verify_backup
from cpr_portal.operator_language import OperatorLanguageMixin


class Command(OperatorLanguageMixin, BaseCommand):
    help = gettext_lazy(
        "Check an archive's checksums, restore it into a temporary database and compare "
        "the row counts with its manifest. The temporary database is always removed."
    )

    def add_arguments(self, parser):
        parser.add_argument("archive", type=Path, help=_("Path of backup_YYYYMMDD_HHMMSS.tar.gz."))

    def handle(self, *args, archive, verbosity, **options):
        progress = self.progress_writer(verbosity)
        cleanup = _("its temporary files and temporary database were removed.")
        with command_errors(_("Verification"), cleanup):
            manifest = verify_backup(archive=archive, progress=progress)
        self.stdout.write(
            self.style.SUCCESS(
                _("Verified %(archive)s: %(summary)s match the manifest")
                % {"archive": archive, "summary": describe_contents(manifest)}
            )
        )
