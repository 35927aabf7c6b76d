from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from backup_restore.interrupts import command_errors
from backup_restore.services import create_backup, table_summary


class Command(BaseCommand):
    help = (
        "Write backup_YYYYMMDD_HHMMSS.tar.gz: the database, the media files and a manifest "
        "with checksums. Prints the archive's path on the last line."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--output",
            type=Path,
            default=None,
            help=f"Folder for the archive (default: CPR_BACKUP_DIR, {settings.CPR_BACKUP_DIR}).",
        )
        parser.add_argument(
            "--keep",
            type=int,
            default=None,
            metavar="N",
            help=(
                "After the backup, delete all but the newest N archives (by the time in "
                "their manifest) that this command made for this install in the folder. "
                "Other files, and archives of other installs, are never deleted."
            ),
        )

    def handle(self, *args, output, keep, verbosity, **options):
        output = output or Path(settings.CPR_BACKUP_DIR)
        with command_errors("Backup", "its unfinished archive and staging folder were removed."):
            result = create_backup(output_dir=output, keep=keep, progress=self.progress(verbosity))
        size_mb = result.path.stat().st_size / 1_000_000
        removed = f"; deleted {len(result.removed)} old archives" if keep is not None else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Backup written: {result.path} ({size_mb:.1f} MB; "
                f"{table_summary(result.manifest)}{removed})"
            )
        )

    def progress(self, verbosity):
        return self.stdout.write if verbosity >= 1 else lambda message: None
