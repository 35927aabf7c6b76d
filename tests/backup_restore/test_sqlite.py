"""Backup, restore and verify of a SQLite file database, through manage.py in subprocesses.

These run whatever database the suite itself uses: each test makes its own SQLite
files in tmp_path and points DATABASE_URL at them.
"""

import re
import sqlite3
from pathlib import Path

import pytest

from backup_restore.archive import read_manifest

from .helpers import project_environment, run_manage, snapshot_in_subprocess


def sqlite_environment(tmp_path: Path, name: str) -> dict[str, str]:
    return project_environment(
        DATABASE_URL=f"sqlite:///{tmp_path / name}.sqlite3",
        DJANGO_MEDIA_ROOT=str(tmp_path / f"{name}-media"),
        CPR_BACKUP_DIR=str(tmp_path / "backups"),
    )


def manage(args: list[str], environment: dict[str, str]):
    result = run_manage(args, environment)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def archive_from(output: str) -> Path:
    """Return the archive path from the summary line of `manage.py backup`."""
    last_line = output.strip().splitlines()[-1]
    match = re.search(r"Backup written: (\S+backup_\d{8}_\d{6}\.tar\.gz)", last_line)
    assert match, output
    return Path(match.group(1))


@pytest.fixture(scope="module")
def filled_sqlite(tmp_path_factory):
    """A migrated SQLite file with rows in every table and media files, backed up once."""
    tmp_path = tmp_path_factory.mktemp("sqlite")
    environment = sqlite_environment(tmp_path, "source")
    manage(["migrate", "--no-input", "-v0"], environment)
    snapshot = snapshot_in_subprocess(environment, fill=True)
    backup = manage(["backup"], environment)
    return tmp_path, environment, snapshot, archive_from(backup.stdout)


def test_sqlite_every_model_filled(filled_sqlite):
    _tmp_path, _environment, snapshot, _archive = filled_sqlite

    assert snapshot["empty_models"] == []
    assert snapshot["media"]


def test_sqlite_round_trip_into_fresh_file(filled_sqlite):
    tmp_path, _environment, snapshot, archive = filled_sqlite
    fresh = sqlite_environment(tmp_path, "fresh")

    restored = run_manage(["restore", str(archive)], fresh)

    assert restored.returncode == 0, restored.stderr
    assert "Restored" in restored.stdout.strip().splitlines()[-1]
    after = snapshot_in_subprocess(fresh)
    assert after["tables"] == snapshot["tables"]
    assert after["media"] == snapshot["media"]


def test_sqlite_verify(filled_sqlite):
    _tmp_path, environment, _snapshot, archive = filled_sqlite

    verified = run_manage(["verify_backup", str(archive)], environment)

    assert verified.returncode == 0, verified.stderr
    assert "match the manifest" in verified.stdout


def test_sqlite_restore_over_data(filled_sqlite, tmp_path):
    source_tmp, environment, snapshot, archive = filled_sqlite
    target = sqlite_environment(source_tmp, "over-data")
    manage(["migrate", "--no-input", "-v0"], target)
    changed = snapshot_in_subprocess(target, fill=True)
    target["CPR_BACKUP_DIR"] = str(tmp_path / "safety")

    refused = run_manage(["restore", str(archive)], target)

    assert refused.returncode != 0
    assert "already contains data" in refused.stderr
    assert snapshot_in_subprocess(target)["tables"] == changed["tables"]

    forced = run_manage(["restore", str(archive), "--force"], target)

    assert forced.returncode == 0, forced.stderr
    assert snapshot_in_subprocess(target)["tables"] == snapshot["tables"]
    safety = list((tmp_path / "safety").glob("pre_restore_*.tar.gz"))
    assert len(safety) == 1
    assert read_manifest(safety[0])["tables"] == read_manifest(archive)["tables"]


def test_sqlite_corrupt_archive_exit_status(filled_sqlite, tmp_path):
    source_tmp, environment, snapshot, archive = filled_sqlite
    truncated = tmp_path / archive.name
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])

    result = run_manage(["restore", str(truncated), "--force"], environment)

    assert result.returncode == 1
    assert "corrupt or truncated" in result.stderr
    assert snapshot_in_subprocess(environment)["tables"] == snapshot["tables"]


def test_sqlite_older_archive_migrated(tmp_path):
    older = sqlite_environment(tmp_path, "older")
    manage(["migrate", "--no-input", "-v0"], older)
    manage(["migrate", "billing", "0001", "--no-input", "-v0"], older)
    archive = archive_from(manage(["backup"], older).stdout)
    fresh = sqlite_environment(tmp_path, "fresh")

    restored = run_manage(["restore", str(archive)], fresh)

    assert restored.returncode == 0, restored.stderr
    assert "migrations applied" in restored.stdout
    with sqlite3.connect(tmp_path / "fresh.sqlite3") as database:
        applied = database.execute(
            "SELECT name FROM django_migrations WHERE app = 'billing' ORDER BY id"
        ).fetchall()
    assert applied == [
        ("0001_initial",),
        ("0002_invoice_kind_and_refund_expiry",),
        ("0003_invoiceitem",),
        ("0004_gateway_labels",),
    ]


def test_sqlite_verify_with_percent_in_tmpdir(filled_sqlite, tmp_path):
    _source_tmp, environment, _snapshot, archive = filled_sqlite
    temporary = tmp_path / "a%20b"
    temporary.mkdir()

    verified = run_manage(
        ["verify_backup", str(archive)], {**environment, "TMPDIR": str(temporary)}
    )

    assert verified.returncode == 0, verified.stderr
    assert list(temporary.iterdir()) == []


def test_sqlite_backup_removes_abandoned_staging(tmp_path):
    environment = sqlite_environment(tmp_path, "staging")
    manage(["migrate", "--no-input", "-v0"], environment)
    backups = Path(environment["CPR_BACKUP_DIR"])
    # What `kill -9` leaves: a staging folder with a dump, its lock file no longer held.
    abandoned = backups / ".backup-staging-killed"
    abandoned.mkdir(parents=True)
    (abandoned / ".in-use").touch()
    (abandoned / "database.sqlite3").write_bytes(b"a full copy of the database")

    manage(["backup"], environment)

    assert not abandoned.exists()
    assert [path.name.startswith("backup_") for path in backups.iterdir()] == [True]
