from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from backup_restore.errors import BackupError
from backup_restore.services import table_summary, verify_backup


class Command(BaseCommand):
    help = (
        "Check an archive's checksums, restore it into a temporary database and compare "
        "the row counts with its manifest. The temporary database is always removed."
    )

    def add_arguments(self, parser):
        parser.add_argument("archive", type=Path, help="Path of backup_YYYYMMDD_HHMMSS.tar.gz.")

    def handle(self, *args, archive, verbosity, **options):
        progress = self.stdout.write if verbosity >= 1 else lambda message: None
        try:
            manifest = verify_backup(archive=archive, progress=progress)
        except BackupError as error:
            raise CommandError(f"Verification failed: {error}") from error
        self.stdout.write(
            self.style.SUCCESS(f"Verified {archive}: {table_summary(manifest)} match the manifest")
        )
