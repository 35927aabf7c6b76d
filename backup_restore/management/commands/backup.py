from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from backup_restore.interrupts import command_errors
from backup_restore.services import create_backup, describe_contents
from cpr_portal.operator_language import OperatorLanguageMixin


class Command(OperatorLanguageMixin, BaseCommand):
    help = gettext_lazy(
        "Write backup_YYYYMMDD_HHMMSS.tar.gz: the database, the media files and a manifest "
        "with checksums. Prints the archive's path on the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--output",
            type=Path,
            default=None,
            help=_("Folder for the archive (default: CPR_BACKUP_DIR, %(folder)s).")
            % {"folder": settings.CPR_BACKUP_DIR},
        )
        parser.add_argument(
            "--keep",
            type=int,
            default=None,
            metavar="N",
            help=_(
                "After the backup, delete all but the newest N archives (by the time in "
                "their manifest) that this command made for this install in the folder. "
                "Other files, and archives of other installs, are never deleted."
            ),
        )

    def handle(self, *args, output, keep, verbosity, **options):
        output = output or Path(settings.CPR_BACKUP_DIR)
        with command_errors(
            _("Backup"), _("its unfinished archive and staging folder were removed.")
        ):
            result = create_backup(
                output_dir=output, keep=keep, progress=self.progress_writer(verbosity)
            )
        details = [
            _("%(size).1f MB") % {"size": result.path.stat().st_size / 1_000_000},
            describe_contents(result.manifest),
        ]
        if keep is not None:
            details.append(
                ngettext(
                    "deleted %(count)d old archive",
                    "deleted %(count)d old archives",
                    len(result.removed),
                )
                % {"count": len(result.removed)}
            )
        # The path ends the line, and "Backup written: " starts it, for scripts/backup.sh.
        self.stdout.write(
            self.style.SUCCESS(
                _("Backup written: %(path)s (%(details)s)")
                % {"path": result.path, "details": "; ".join(details)}
            )
        )
