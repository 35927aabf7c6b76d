"""Archive names, the install id in each manifest, and `--keep N` retention.

An archive belongs to this install when its manifest has this install's id. The id is
derived from the database engine, the database name and a random token that the first
backup stores in the database. So pruning never deletes archives of another install, of
another database or of another engine in the same folder. Age comes from the manifest's
creation time, not from the file name, which anyone can change.
"""

import hashlib
import logging
import re
import secrets
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

from django.db import DatabaseError, connections
from django.utils.translation import gettext_noop

from cpr_portal.messages import Message

from .archive import read_manifest
from .databases import Database
from .errors import BackupError

logger = logging.getLogger(__name__)

# Receives a Message: str() of it is English for a log, `translated()` is for the screen.
Progress = Callable[[Message], None]

# Names of the archives that `backup` writes; retention considers no other file.
ARCHIVE_NAME = re.compile(r"^backup_\d{8}_\d{6}\.tar\.gz$")
# When the archive name of the backup's second is taken (another backup finished in the
# same second), the names of the following seconds are tried, up to this many in all.
NAME_ATTEMPTS = 60
INSTALLATION_TABLE = "backup_restore_installation"


def archive_names(directory: Path, prefix: str, created_at: datetime) -> Iterator[Path]:
    """Yield `<prefix>_YYYYMMDD_HHMMSS.tar.gz` for `created_at`, then for the seconds after it."""
    for offset in range(NAME_ATTEMPTS):
        moment = created_at + timedelta(seconds=offset)
        yield directory / f"{prefix}_{moment:%Y%m%d_%H%M%S}.tar.gz"


def install_id(database: Database, using: str, *, create: bool) -> str | None:
    """Return this install's id, making its token first when `create` and there is none.

    Returns None when the database has no token and `create` is false, or when it has not
    been migrated to have the table of tokens.
    """
    from .models import Installation

    with connections[using].cursor() as cursor:
        if INSTALLATION_TABLE not in connections[using].introspection.table_names(cursor):
            if create:
                logger.warning(
                    "The %s lacks the %s table, so this backup gets no install id and "
                    "--keep never deletes it. Run migrate.",
                    database.describe(),
                    INSTALLATION_TABLE,
                )
            return None
    installations = Installation.objects.using(using)
    if create:
        try:
            installation, _created = installations.get_or_create(
                pk=1, defaults={"token": secrets.token_hex(16)}
            )
        except DatabaseError as error:
            logger.warning(
                "Cannot store the install token in the %s (%s), so this backup gets no "
                "install id and --keep never deletes it.",
                database.describe(),
                error,
            )
            return None
    else:
        installation = installations.filter(pk=1).first()
        if installation is None:
            return None
    source = f"{database.vendor}\0{database.name}\0{installation.token}"
    return hashlib.sha256(source.encode()).hexdigest()[:32]


def prune_backups(
    *,
    directory: Path,
    keep: int,
    install_id: str,
    newest: Path,
    progress: Progress = logger.info,
) -> list[Path]:
    """Delete all but the newest `keep` archives of this install in `directory`.

    `newest` is the archive just written: it counts as one of the `keep` and is never
    deleted. Another archive counts only when its name is `backup_YYYYMMDD_HHMMSS.tar.gz`
    and its manifest has `install_id` and a creation time; the newest by that time stay.
    An archive that another run deletes meanwhile is skipped.
    """
    if keep < 1:
        raise BackupError(
            gettext_noop(
                "--keep must be 1 or more, got %(keep)s: it counts the archive just made."
            ),
            keep=keep,
        )
    ours = []
    for path in sorted(Path(directory).iterdir()):
        if path == newest or not ARCHIVE_NAME.match(path.name):
            continue
        if path.is_symlink() or not path.is_file():
            continue
        manifest = read_manifest(path)
        if manifest is None:
            logger.warning("Retention left %s in place: it is not a portal backup", path)
            continue
        created = manifest.get("created_unix_time")
        if manifest.get("install_id") != install_id or not isinstance(created, int):
            logger.info("Retention left %s in place: another install made it", path)
            continue
        ours.append((created, path.name, path))
    ours.sort(reverse=True)

    removed = []
    for _created, _name, path in ours[keep - 1 :]:
        try:
            path.unlink()
        except FileNotFoundError:
            logger.info("Retention found %s already deleted", path)
            continue
        logger.info("Retention deleted %s", path)
        progress(Message(gettext_noop("Deleted old backup %(name)s"), name=path.name))
        removed.append(path)
    return removed
