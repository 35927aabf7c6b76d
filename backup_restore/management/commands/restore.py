from pathlib import Path

from django.core.management.base import BaseCommand

from backup_restore.interrupts import command_errors
from backup_restore.services import restore_backup, table_summary


class Command(BaseCommand):
    help = (
        "Restore the database and media files from an archive made by `backup`, after "
        "checking every checksum. Rejects a database that contains data unless --force."
    )

    def add_arguments(self, parser):
        parser.add_argument("archive", type=Path, help="Path of backup_YYYYMMDD_HHMMSS.tar.gz.")
        parser.add_argument(
            "--force",
            action="store_true",
            help=(
                "Replace a database that already contains data. A safety backup of it is "
                "written first (pre_restore_YYYYMMDD_HHMMSS.tar.gz), as it is for any "
                "database that has tables."
            ),
        )
        parser.add_argument(
            "--safety-dir",
            type=Path,
            default=None,
            help="Folder for the safety backup (default: CPR_BACKUP_DIR).",
        )

    def handle(self, *args, archive, force, safety_dir, verbosity, **options):
        progress = self.stdout.write if verbosity >= 1 else lambda message: None
        cleanup = (
            "its temporary files were removed, and a database restore that had not "
            "committed was rolled back."
        )
        with command_errors("Restore", cleanup):
            result = restore_backup(
                archive=archive, force=force, safety_dir=safety_dir, progress=progress
            )
        details = [table_summary(result.manifest)]
        details.append("migrations applied" if result.migrated else "no migrations needed")
        if result.media_kept:
            details.append(f"kept {len(result.media_kept)} media files the archive lacks")
        if result.safety_backup:
            details.append(f"safety backup {result.safety_backup}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Restored {result.archive} (portal {result.manifest['portal_version']}, "
                f"made {result.manifest['created_at']}): {'; '.join(details)}"
            )
        )
