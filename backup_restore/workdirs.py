"""Temporary folders that a killed run leaves behind and a later run removes.

Each folder holds a lock file that its run keeps locked (flock) until it ends. The
operating system releases the lock when the process dies, even on `kill -9`, so a later
run can tell an abandoned folder from one still in use and remove it.
"""

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

LOCK_NAME = ".in-use"
# A folder without a lock file comes from a version of the portal before the lock, or is
# being created right now. It is removed only when nothing has changed in it for this long.
UNLOCKED_MAX_AGE_SECONDS = 24 * 60 * 60


@contextlib.contextmanager
def locked_temporary_directory(prefix: str, parent: Path | None = None) -> Iterator[Path]:
    """Create a folder `<prefix><random>` in `parent`, yield it, and always remove it.

    Abandoned folders with the same prefix in `parent` (default: the system's temporary
    folder) are removed first.
    """
    parent = Path(parent) if parent is not None else Path(tempfile.gettempdir())
    remove_abandoned(parent, prefix)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        lock = _create_held_lock(path)
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        os.close(lock)


def _create_held_lock(directory: Path) -> int:
    # Locked before it gets its final name, so no other run can find it unlocked.
    pending = directory / f"{LOCK_NAME}.new"
    descriptor = os.open(pending, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.rename(pending, directory / LOCK_NAME)
    return descriptor


def remove_abandoned(parent: Path, prefix: str) -> list[Path]:
    """Remove the folders `<prefix>*` in `parent` whose run has ended; return them.

    Folders of other users, which this process cannot open, are left alone.
    """
    removed = []
    try:
        entries = list(parent.iterdir())
    except OSError as error:
        logger.warning("Cannot list %s to remove abandoned folders: %s", parent, error)
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix) or entry.is_symlink() or not entry.is_dir():
            continue
        with _lock_if_abandoned(entry) as abandoned:
            if abandoned:
                shutil.rmtree(entry, ignore_errors=True)
                logger.info("Removed %s, left behind by a run that was killed", entry)
                removed.append(entry)
    return removed


@contextlib.contextmanager
def _lock_if_abandoned(directory: Path) -> Iterator[bool]:
    """Yield whether no run uses `directory`, holding its lock while the caller works."""
    try:
        descriptor = os.open(directory / LOCK_NAME, os.O_RDONLY)
    except FileNotFoundError:
        yield _unchanged_for(directory, UNLOCKED_MAX_AGE_SECONDS)
        return
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
        else:
            yield True
    finally:
        os.close(descriptor)


def _unchanged_for(directory: Path, seconds: float) -> bool:
    try:
        return time.time() - directory.stat().st_mtime > seconds
    except OSError:
        return False
