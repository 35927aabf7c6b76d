from pathlib import Path

from django.core.management.base import BaseCommand
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from backup_restore.interrupts import command_errors
from backup_restore.services import describe_contents, restore_backup
from cpr_portal.operator_language import OperatorLanguageMixin


class Command(OperatorLanguageMixin, BaseCommand):
    help = gettext_lazy(
        "Restore the database and media files from an archive made by `backup`, after "
        "checking every checksum. Rejects a database that contains data unless --force."
    )

    def add_arguments(self, parser):
        parser.add_argument("archive", type=Path, help=_("Path of backup_YYYYMMDD_HHMMSS.tar.gz."))
        parser.add_argument(
            "--force",
            action="store_true",
            help=_(
                "Replace a database that already contains data. A safety backup of it is "
                "written first (pre_restore_YYYYMMDD_HHMMSS.tar.gz), as it is for any "
                "database that has tables."
            ),
        )
        parser.add_argument(
            "--safety-dir",
            type=Path,
            default=None,
            help=_("Folder for the safety backup (default: CPR_BACKUP_DIR)."),
        )

    def handle(self, *args, archive, force, safety_dir, verbosity, **options):
        progress = self.progress_writer(verbosity)
        cleanup = _(
            "its temporary files were removed, and a database restore that had not "
            "committed was rolled back."
        )
        with command_errors(_("Restore"), cleanup):
            result = restore_backup(
                archive=archive, force=force, safety_dir=safety_dir, progress=progress
            )
        details = [describe_contents(result.manifest)]
        details.append(_("migrations applied") if result.migrated else _("no migrations needed"))
        if result.media_kept:
            details.append(
                ngettext(
                    "kept %(count)d media file the archive lacks",
                    "kept %(count)d media files the archive lacks",
                    len(result.media_kept),
                )
                % {"count": len(result.media_kept)}
            )
        if result.safety_backup:
            details.append(_("safety backup %(path)s") % {"path": result.safety_backup})
        self.stdout.write(
            self.style.SUCCESS(
                _("Restored %(archive)s (portal %(version)s, made %(created)s): %(details)s")
                % {
                    "archive": result.archive,
                    "version": result.manifest["portal_version"],
                    "created": result.manifest["created_at"],
                    "details": "; ".join(details),
                }
            )
        )
