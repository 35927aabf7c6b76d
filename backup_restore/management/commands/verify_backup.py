from pathlib import Path

from django.core.management.base import BaseCommand

from backup_restore.interrupts import command_errors
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
        cleanup = "its temporary files and temporary database were removed."
        with command_errors("Verification", cleanup):
            manifest = verify_backup(archive=archive, progress=progress)
        self.stdout.write(
            self.style.SUCCESS(f"Verified {archive}: {table_summary(manifest)} match the manifest")
        )
