"""Archive names that concurrent runs share, work folders that killed runs leave, signals.

None of these reads a database, so they run on either engine.
"""

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from backup_restore.archive import (
    FORMAT,
    FORMAT_VERSION,
    extract_archive,
    file_entry,
    write_archive,
)
from backup_restore.databases import SqliteDatabase
from backup_restore.errors import BackupError
from backup_restore.interrupts import Interrupted, raise_on_signals
from backup_restore.workdirs import LOCK_NAME, locked_temporary_directory


def staged_manifest(staging: Path, content: bytes) -> dict:
    (staging / "database.part").write_bytes(content)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "database": {"vendor": "sqlite", "file": "database.part"},
        "migrations": {},
        "tables": {},
        "files": {"database.part": file_entry(staging / "database.part").as_json()},
    }


def test_write_archive_concurrent_runs_same_name(tmp_path):
    folder = tmp_path / "backups"
    folder.mkdir()
    candidates = [
        folder / "backup_20260101_020000.tar.gz",
        folder / "backup_20260101_020001.tar.gz",
    ]
    contents = [os.urandom(8_000_000), os.urandom(8_000_000)]
    start = threading.Barrier(2)
    written: dict[int, Path] = {}
    failures = []

    def run(index):
        staging = folder / f".backup-staging-{index}"
        staging.mkdir()
        manifest = staged_manifest(staging, contents[index])
        start.wait()
        try:
            written[index] = write_archive(candidates, manifest, staging)
        except Exception as error:  # noqa: BLE001 (reported by the assertion below)
            failures.append(error)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    assert sorted(written.values()) == candidates
    for index, path in written.items():
        extracted = tmp_path / f"extracted-{index}"
        extract_archive(path, extracted)
        assert (extracted / "database.part").read_bytes() == contents[index]


def test_write_archive_never_replaces(tmp_path):
    folder = tmp_path / "backups"
    staging = tmp_path / "staging"
    staging.mkdir(parents=True)
    folder.mkdir()
    taken = folder / "backup_20260101_020000.tar.gz"
    taken.write_bytes(b"an archive made a moment ago")
    candidates = [taken, folder / "backup_20260101_020001.tar.gz"]

    path = write_archive(candidates, staged_manifest(staging, b"db"), staging)

    assert path == candidates[1]
    assert taken.read_bytes() == b"an archive made a moment ago"
    assert sorted(item.name for item in staging.iterdir()) == ["database.part"]

    with pytest.raises(BackupError, match="Every archive name tried is taken"):
        write_archive(candidates, staged_manifest(staging, b"db"), staging)


def test_abandoned_work_folders_removed(tmp_path):
    killed = tmp_path / "cpr-restore-killed"
    killed.mkdir()
    (killed / LOCK_NAME).touch()
    (killed / "database.dump").write_bytes(b"a full dump")
    old_unlocked = tmp_path / "cpr-restore-old"
    old_unlocked.mkdir()
    two_days_ago = time.time() - 2 * 24 * 60 * 60
    os.utime(old_unlocked, (two_days_ago, two_days_ago))
    new_unlocked = tmp_path / "cpr-restore-starting"
    new_unlocked.mkdir()
    other_prefix = tmp_path / "cpr-verify-killed"
    other_prefix.mkdir()
    (other_prefix / LOCK_NAME).touch()

    with locked_temporary_directory("cpr-restore-", tmp_path) as running:
        with locked_temporary_directory("cpr-restore-", tmp_path) as second:
            assert running.is_dir()
            assert second.is_dir()
        assert not second.exists()
        assert running.is_dir()

    assert not killed.exists()
    assert not old_unlocked.exists()
    assert new_unlocked.is_dir()
    assert other_prefix.is_dir()
    assert not running.exists()


def test_sqlite_dump_check_with_percent_in_path(tmp_path):
    folder = tmp_path / "a%20b"
    folder.mkdir()
    dump = folder / "database.sqlite3"
    with sqlite3.connect(dump) as database:
        database.execute("CREATE TABLE members_member (id integer)")
        database.execute("INSERT INTO members_member VALUES (1), (2)")
    database.close()
    sqlite = SqliteDatabase({"NAME": str(tmp_path / "target.sqlite3")})

    sqlite.check_dump(dump, {"members_member": 2})

    with pytest.raises(BackupError, match="members_member: 3 in the manifest, 2 in the database"):
        sqlite.check_dump(dump, {"members_member": 3})


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
def test_signal_raises_interrupted(stop):
    previous = signal.getsignal(stop)

    with pytest.raises(Interrupted) as raised, raise_on_signals():
        os.kill(os.getpid(), stop)
        # The handler runs between bytecodes; this gives it the chance.
        time.sleep(5)

    assert raised.value.signal_number == stop
    assert raised.value.exit_status == 128 + stop
    assert signal.getsignal(stop) == previous
