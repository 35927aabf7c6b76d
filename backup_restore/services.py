"""Back up, restore and verify the portal: the database and the media files in one archive.

The management commands `backup`, `restore` and `verify_backup` call these functions.
Every check that can fail (archive integrity, archive from newer code, data in the target)
runs before anything is changed.
"""

import importlib
import importlib.metadata
import logging
import os
import secrets
import shutil
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.management import call_command
from django.db import DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from cpr_portal.messages import Message

from .archive import (
    FORMAT,
    FORMAT_VERSION,
    MEDIA_PREFIX,
    extract_archive,
    file_entry,
    media_files,
    stage_media,
    write_archive,
)
from .databases import Database, compare_rows, database_for
from .errors import BackupError
from .retention import INSTALLATION_TABLE, Progress, archive_names, install_id, prune_backups
from .workdirs import locked_temporary_directory

logger = logging.getLogger(__name__)

ARCHIVE_PREFIX = "backup"
SAFETY_PREFIX = "pre_restore"
# pg_dump's compression level for the safety backup that a restore writes first. With
# pg_dump 15 on a 10,000-member database, level 1 took 0.5 s of CPU against 1.4 s at the
# default level 6, for a dump about a third larger (measurements in bench/BATCH_NOTES.md).
SAFETY_COMPRESS_LEVEL = 1
# Work folders: staging next to the archive (that file system has room for it), the
# others in the system's temporary folder. A later run removes those a killed run left.
STAGING_PREFIX = ".backup-staging-"
RESTORE_WORK_PREFIX = "cpr-restore-"
VERIFY_WORK_PREFIX = "cpr-verify-"
# Tables that `migrate` or `backup` fill by themselves. Rows there are not "data".
GENERATED_TABLES = frozenset(
    {"django_migrations", "django_content_type", "auth_permission", INSTALLATION_TABLE}
)


@dataclass(frozen=True)
class BackupResult:
    path: Path
    manifest: dict
    removed: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class RestoreResult:
    archive: Path
    manifest: dict
    safety_backup: Path | None
    migrated: bool
    media_written: int
    # Media files that were in MEDIA_ROOT but not in the archive; restore keeps them.
    media_kept: list[str]


def portal_version() -> str:
    """Return the portal's version from the installed package, else from pyproject.toml."""
    try:
        return importlib.metadata.version("cpr-portal")
    except importlib.metadata.PackageNotFoundError:
        with open(settings.BASE_DIR / "pyproject.toml", "rb") as pyproject:
            return tomllib.load(pyproject)["project"]["version"]


def code_migrations() -> set[tuple[str, str]]:
    """Return (app, name) of every migration this code has, squashed ones included."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    known = set(loader.disk_migrations)
    for migration in loader.disk_migrations.values():
        known.update(migration.replaces)
    return known


def table_summary(manifest: dict) -> str:
    """Return "12 tables, 340 rows, 5 media files" in English, for the log."""
    tables = manifest["tables"]
    media = sum(1 for name in manifest["files"] if name.startswith(MEDIA_PREFIX))
    return f"{len(tables)} tables, {sum(tables.values())} rows, {media} media files"


def describe_contents(manifest: dict) -> str:
    """Return table_summary's counts in the active language, for the commands' output."""
    tables = manifest["tables"]
    media = sum(1 for name in manifest["files"] if name.startswith(MEDIA_PREFIX))
    return _("%(tables)d tables, %(rows)d rows, %(media)d media files") % {
        "tables": len(tables),
        "rows": sum(tables.values()),
        "media": media,
    }


def checking_message(archive: Path) -> Message:
    return Message(gettext_noop("Checking %(archive)s and every checksum"), archive=archive)


# --- Backup -------------------------------------------------------------------------------


def create_backup(
    *,
    output_dir: Path,
    keep: int | None = None,
    using: str = "default",
    prefix: str = ARCHIVE_PREFIX,
    progress: Progress = logger.info,
    now: datetime | None = None,
    compress_level: int | None = None,
) -> BackupResult:
    """Write `<prefix>_YYYYMMDD_HHMMSS.tar.gz` (local time) to `output_dir` and return it.

    When an archive of that second exists, the name of the next free second is used.
    With `keep`, archives of this install beyond the newest `keep` in `output_dir` are
    deleted afterwards; see `prune_backups`. `compress_level` (0-9) is pg_dump's
    compression level, None its default.
    """
    if keep is not None and keep < 1:
        raise BackupError(
            gettext_noop(
                "--keep must be 1 or more, got %(keep)s: it counts the archive just made."
            ),
            keep=keep,
        )
    database = database_for(using)
    created_at = timezone.localtime(now)
    output_dir = prepare_output_dir(Path(output_dir))
    # Only `backup` archives take part in retention, so only they make the install's token.
    install = install_id(database, using, create=prefix == ARCHIVE_PREFIX)

    logger.info("Backup of the %s to %s started", database.describe(), output_dir)
    try:
        with locked_temporary_directory(STAGING_PREFIX, output_dir) as staging_dir:
            progress(
                Message(gettext_noop("Dumping the %(database)s"), database=database.describe())
            )
            snapshot = database.dump(
                staging_dir / database.dump_filename, compress_level=compress_level
            )
            progress(
                Message(
                    gettext_noop("Copying media files from %(folder)s"), folder=settings.MEDIA_ROOT
                )
            )
            files = {database.dump_filename: file_entry(staging_dir / database.dump_filename)}
            files.update(stage_media(Path(settings.MEDIA_ROOT), staging_dir))
            manifest = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "created_at": created_at.isoformat(),
                "created_unix_time": int(created_at.timestamp()),
                "install_id": install,
                "portal_version": portal_version(),
                "database": {
                    "vendor": database.vendor,
                    "server_version": snapshot.server_version,
                    "name": database.name,
                    "file": database.dump_filename,
                },
                "migrations": snapshot.migrations,
                "tables": snapshot.tables,
                "files": {name: entry.as_json() for name, entry in files.items()},
            }
            progress(Message(gettext_noop("Writing the archive in %(folder)s"), folder=output_dir))
            path = write_archive(
                archive_names(output_dir, prefix, created_at), manifest, staging_dir
            )
    except OSError as error:
        logger.error("Backup to %s failed: %s", output_dir, error)
        raise BackupError(
            gettext_noop(
                "Writing the backup in %(folder)s failed: %(error)s. Check that the folder has "
                "room and that this user may write there, then run the backup again."
            ),
            folder=output_dir,
            error=error,
        ) from error
    logger.info("Backup written to %s (%d bytes)", path, path.stat().st_size)

    removed = []
    if keep is not None and install is not None:
        removed = prune_backups(
            directory=output_dir, keep=keep, install_id=install, newest=path, progress=progress
        )
    elif keep is not None:
        progress(
            Message(
                gettext_noop(
                    "This database has no install id (run migrate), so no archive was deleted"
                )
            )
        )
    return BackupResult(path=path, manifest=manifest, removed=removed)


def prepare_output_dir(output_dir: Path) -> Path:
    """Create `output_dir` when missing; raise BackupError when it cannot hold archives."""
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BackupError(
            gettext_noop(
                "Cannot use %(folder)s as the backup folder: %(error)s. Give a folder "
                "that this user may create or write to."
            ),
            folder=output_dir,
            error=error.strerror,
        ) from error
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise BackupError(
            gettext_noop(
                "Cannot write to the backup folder %(folder)s. Give a folder that this user "
                "may write to."
            ),
            folder=output_dir,
        )
    return output_dir


# --- Restore ------------------------------------------------------------------------------


def restore_backup(
    *,
    archive: Path,
    force: bool = False,
    safety_dir: Path | None = None,
    using: str = "default",
    progress: Progress = logger.info,
) -> RestoreResult:
    """Restore the database and media files of `archive`, then migrate if the archive is older.

    Before changing anything, rejects an archive that is unreadable or altered, comes
    from code with migrations this code lacks, or contains another database engine, and
    media files that a folder or file in MEDIA_ROOT would block. Also rejects a target
    that already contains data, unless `force`. Whenever the target has any table or a
    media file the archive would replace, a safety backup of it is written first, to
    `safety_dir` (default CPR_BACKUP_DIR). The database restore is all or nothing.
    """
    archive = Path(archive)
    database = database_for(using)
    media_root = Path(settings.MEDIA_ROOT)
    logger.info("Restore of %s into the %s started", archive, database.describe())
    with locked_temporary_directory(RESTORE_WORK_PREFIX) as work_dir:
        progress(checking_message(archive))
        manifest = extract_archive(archive, work_dir)
        check_restorable(archive, manifest, database)
        check_media_targets(manifest, media_root)
        dump = work_dir / manifest["database"]["file"]
        database.check_dump(dump, manifest["tables"])

        target = describe_target(database, manifest, media_root, using)
        if target.data and not force:
            raise BackupError(
                gettext_noop(
                    "The %(database)s already contains data (%(data)s). Nothing was changed. "
                    "Run the restore again with --force to replace it; a safety backup of "
                    "the current data is written first."
                ),
                database=database.describe(),
                data=target.data,
            )
        safety_backup = None
        if target.data or target.has_tables:
            progress(
                Message(
                    gettext_noop(
                        "Writing a safety backup of the current database and media files first"
                    )
                )
            )
            safety_backup = create_backup(
                output_dir=Path(safety_dir or settings.CPR_BACKUP_DIR),
                using=using,
                prefix=SAFETY_PREFIX,
                progress=progress,
                compress_level=SAFETY_COMPRESS_LEVEL,
            ).path
            # scripts/restore.sh takes the path from the end of this line, in any language.
            # Translators: keep %(path)s at the very end of the line; a script reads it there.
            progress(Message(gettext_noop("Safety backup written: %(path)s"), path=safety_backup))

        progress(Message(gettext_noop("Restoring the %(database)s"), database=database.describe()))
        connections[using].close()
        database.restore(dump, tables=manifest["tables"])

        progress(Message(gettext_noop("Restoring media files into %(folder)s"), folder=media_root))
        try:
            written, kept = restore_media(work_dir, manifest, media_root)
        except OSError as error:
            logger.error("Restoring media files into %s failed: %s", media_root, error)
            if safety_backup:
                raise BackupError(
                    gettext_noop(
                        "The database was restored, but writing the media files into "
                        "%(folder)s failed: %(error)s. Fix that and run the restore again "
                        "with --force. The data before the restore is in %(safety_backup)s."
                    ),
                    folder=media_root,
                    error=error,
                    safety_backup=safety_backup,
                ) from error
            raise BackupError(
                gettext_noop(
                    "The database was restored, but writing the media files into "
                    "%(folder)s failed: %(error)s. Fix that and run the restore again "
                    "with --force."
                ),
                folder=media_root,
                error=error,
            ) from error

    migrated = migrate_if_needed(using, progress)
    logger.info(
        "Restore of %s finished: %s, migrated=%s", archive, table_summary(manifest), migrated
    )
    return RestoreResult(
        archive=archive,
        manifest=manifest,
        safety_backup=safety_backup,
        migrated=migrated,
        media_written=written,
        media_kept=kept,
    )


def check_restorable(archive: Path, manifest: dict, database: Database) -> None:
    """Raise BackupError for an archive from newer code or from another database engine."""
    known = code_migrations()
    unknown = sorted(
        f"{app}.{name}"
        for app, names in manifest["migrations"].items()
        for name in names
        if (app, name) not in known
    )
    if unknown:
        raise BackupError(
            gettext_noop(
                "%(archive)s is newer than this code (portal %(version)s): it was made by "
                "portal %(archive_version)s and has migrations this code does not have: "
                "%(migrations)s. Deploy that version or a newer one, then restore. "
                "Nothing was changed."
            ),
            archive=archive,
            version=portal_version(),
            archive_version=manifest.get("portal_version", "unknown"),
            migrations=", ".join(unknown),
        )
    vendor = manifest["database"]["vendor"]
    if vendor != database.vendor:
        raise BackupError(
            gettext_noop(
                "%(archive)s contains a %(vendor)s database, but this portal uses "
                "%(portal_vendor)s. Restore it into a portal configured with the same engine. "
                "Nothing was changed."
            ),
            archive=archive,
            vendor=vendor,
            portal_vendor=database.vendor,
        )


def check_media_targets(manifest: dict, media_root: Path) -> None:
    """Raise BackupError when a file or folder in `media_root` blocks an archive's media file."""
    conflicts = set()
    for name in manifest["files"]:
        if not name.startswith(MEDIA_PREFIX):
            continue
        relative = PurePosixPath(name.removeprefix(MEDIA_PREFIX))
        # MEDIA_ROOT itself, then each folder on the way to the file, outermost first.
        folders = [media_root, *(media_root / parent for parent in reversed(relative.parents[:-1]))]
        for folder in folders:
            if (folder.exists() or folder.is_symlink()) and not folder.is_dir():
                conflicts.add(
                    Message(
                        gettext_noop(
                            "%(path)s is a file, but the archive has files in a folder so named"
                        ),
                        path=folder,
                    )
                )
        target = media_root / relative
        if target.is_dir():
            conflicts.add(
                Message(
                    gettext_noop("%(path)s is a folder, but the archive has a file of that name"),
                    path=target,
                )
            )
    if conflicts:
        listed = sorted(conflicts, key=str)
        if len(listed) > 10:
            raise BackupError(
                gettext_noop(
                    "Media files of the archive cannot be written: %(conflicts)s (and "
                    "%(more)d more). Move those away, then run the restore again. "
                    "Nothing was changed."
                ),
                conflicts=listed[:10],
                more=len(listed) - 10,
            )
        raise BackupError(
            gettext_noop(
                "Media files of the archive cannot be written: %(conflicts)s. Move those "
                "away, then run the restore again. Nothing was changed."
            ),
            conflicts=listed,
        )


@dataclass(frozen=True)
class TargetContents:
    """Contents of a restore target that the restore would replace."""

    # Tables with rows and media files that differ: a restore over them needs --force.
    data: list[Message]
    # Whether the database has any table at all, even one with nothing but generated rows.
    has_tables: bool


def describe_target(
    database: Database, manifest: dict, media_root: Path, using: str
) -> TargetContents:
    """List what the restore would replace: tables with rows, media files that differ.

    A freshly migrated database contains no data: the tables that `migrate` and `backup`
    fill, and the plan that a data migration seeds as long as nobody edited it, do not count.
    """
    data = []
    rows = database.table_rows()
    for table, count in rows.items():
        if count == 0 or table in GENERATED_TABLES:
            continue
        if table == SEEDED_PLAN_TABLE and count == 1 and seeded_plan_unchanged(using):
            continue
        data.append(Message(gettext_noop("%(table)s: %(count)d rows"), table=table, count=count))
    overwritten = 0
    for name, entry in manifest["files"].items():
        if not name.startswith(MEDIA_PREFIX):
            continue
        target = media_root / name.removeprefix(MEDIA_PREFIX)
        if target.is_file() and file_entry(target).as_json() != entry:
            overwritten += 1
    if overwritten:
        data.append(
            Message(
                gettext_noop("%(count)d media files in %(folder)s differ from the archive's"),
                count=overwritten,
                folder=media_root,
            )
        )
    return TargetContents(data=data, has_tables=bool(rows))


SEEDED_PLAN_TABLE = "members_plan"
# Columns that change by themselves; all others must match the seed for it to be unchanged.
UNTRACKED_PLAN_FIELDS = frozenset({"id", "created_at", "updated_at"})


def seeded_plan_unchanged(using: str) -> bool:
    """Return whether the plans table contains only the plan that migrations seed, unedited."""
    from members.models import Plan

    seed = {
        **importlib.import_module("members.migrations.0002_seed_hot_desk_plan").HOT_DESK,
        **importlib.import_module("members.migrations.0012_seed_hot_desk_spanish").HOT_DESK_ES,
    }
    expected = {
        field.attname: seed[field.name] if field.name in seed else field.get_default()
        for field in Plan._meta.concrete_fields
        if field.name not in UNTRACKED_PLAN_FIELDS
    }
    try:
        rows = list(Plan.objects.using(using).values(*expected))
    except DatabaseError:
        # A schema older than the code: the row cannot be compared, so it counts as data.
        logger.info("Cannot compare the plans in %s with the seeded plan", using, exc_info=True)
        return False
    return rows == [expected]


def restore_media(staging_dir: Path, manifest: dict, media_root: Path) -> tuple[int, list[str]]:
    """Copy the archive's media files into `media_root`; return (files written, files kept).

    Files under `media_root` that the archive does not have are kept, not deleted. Each file
    is written under a temporary name and then renamed, so no file is ever half-written.
    """
    names = [name for name in manifest["files"] if name.startswith(MEDIA_PREFIX)]
    written = 0
    for name in names:
        source = staging_dir / name
        target = media_root / name.removeprefix(MEDIA_PREFIX)
        if target.is_file() and file_entry(target).as_json() == manifest["files"][name]:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.restoring")
        shutil.copyfile(source, partial)
        os.replace(partial, target)
        written += 1
    restored = {name.removeprefix(MEDIA_PREFIX) for name in names}
    kept = [
        path.relative_to(media_root).as_posix()
        for path in media_files(media_root)
        if path.relative_to(media_root).as_posix() not in restored
    ]
    if kept:
        logger.info("Restore kept %d media files that the archive does not have", len(kept))
    return written, kept


def migrate_if_needed(using: str, progress: Progress) -> bool:
    """Apply the migrations the restored database lacks; return whether there were any."""
    connections[using].close()
    executor = MigrationExecutor(connections[using])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if not plan:
        return False
    progress(
        Message(
            gettext_noop(
                "The archive is older than the code: applying the migrations it lacks (%(count)d)"
            ),
            count=len(plan),
        )
    )
    call_command("migrate", database=using, interactive=False, verbosity=0)
    return True


# --- Verify -------------------------------------------------------------------------------


def verify_backup(
    *, archive: Path, using: str = "default", progress: Progress = logger.info
) -> dict:
    """Restore `archive` into a temporary database and compare its row counts with the manifest.

    Rejects first what `restore` would reject before it changes anything: an archive that
    is damaged, from newer code or of another engine. The temporary database is of the
    configured engine and is named uniquely per run. It is dropped on success, on errors and
    on SIGINT, SIGTERM or SIGHUP, but not when the process is killed with SIGKILL.
    Returns the manifest, and raises BackupError on any mismatch.
    """
    archive = Path(archive)
    database = database_for(using)
    logger.info("Verification of %s started", archive)
    with locked_temporary_directory(VERIFY_WORK_PREFIX) as work_dir:
        progress(checking_message(archive))
        manifest = extract_archive(archive, work_dir)
        check_restorable(archive, manifest, database)
        dump = work_dir / manifest["database"]["file"]
        database.check_dump(dump, manifest["tables"])
        label = f"{timezone.now():%Y%m%d%H%M%S}_{secrets.token_hex(4)}"
        with database.temporary_database(label, work_dir) as temporary:
            progress(
                Message(
                    gettext_noop("Restoring into the temporary %(database)s"),
                    database=temporary.describe(),
                )
            )
            temporary.restore(dump, tables=manifest["tables"])
            differences = compare_rows(temporary.table_rows(), manifest["tables"])
        if differences:
            raise BackupError(
                gettext_noop(
                    "%(archive)s does not restore to the row counts in its manifest: "
                    "%(differences)s"
                ),
                archive=archive,
                differences=differences,
            )
    logger.info("Verification of %s passed: %s", archive, table_summary(manifest))
    return manifest
