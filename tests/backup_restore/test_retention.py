"""Retention keeps the newest N archives of this install and never touches other files."""

import pytest
from django.core.management import CommandError, call_command

from backup_restore import retention
from backup_restore.services import prune_backups

INSTALL = "a" * 32
OTHER_INSTALL = "b" * 32
DAY = 24 * 60 * 60
# 2026-01-01 02:00 UTC, then one archive a day.
FIRST_TIME = 1_767_232_800
OURS = [
    "backup_20260101_020000.tar.gz",
    "backup_20260102_020000.tar.gz",
    "backup_20260103_020000.tar.gz",
    "backup_20260104_020000.tar.gz",
    "backup_20260105_020000.tar.gz",
]
NEWEST = "backup_20260106_020000.tar.gz"


@pytest.fixture
def backup_folder(tmp_path, make_archive):
    """A folder with six archives of INSTALL, the last one just written, and other files."""
    folder = tmp_path / "backups"
    for index, name in enumerate([*OURS, NEWEST]):
        make_archive(
            name,
            directory=folder,
            database=b"db",
            install_id=INSTALL,
            created_unix_time=FIRST_TIME + index * DAY,
        )
    # Same name pattern, but made by another tool.
    (folder / "backup_20200101_000000.tar.gz").write_bytes(b"odoo dump")
    # Portal archives of another install, and of a portal before install ids.
    make_archive(
        "backup_20250101_000000.tar.gz",
        directory=folder,
        database=b"db",
        install_id=OTHER_INSTALL,
        created_unix_time=FIRST_TIME - DAY,
    )
    make_archive("backup_20250102_000000.tar.gz", directory=folder, database=b"db")
    make_archive(
        "pre_restore_20200101_000000.tar.gz",
        directory=folder,
        database=b"db",
        install_id=INSTALL,
        created_unix_time=FIRST_TIME - DAY,
    )
    make_archive("backup_copy.tar.gz", directory=folder, database=b"db", install_id=INSTALL)
    (folder / "backup_20200102_000000.tar.gz").mkdir()
    (folder / "notes.txt").write_text("keep me")
    return folder


def prune(folder, keep):
    return prune_backups(directory=folder, keep=keep, install_id=INSTALL, newest=folder / NEWEST)


def archives_of_2026(folder) -> list[str]:
    return sorted(path.name for path in folder.glob("backup_2026*"))


@pytest.mark.parametrize("keep", [1, 2, 6])
def test_prune_keeps_newest(backup_folder, keep):
    removed = prune(backup_folder, keep)

    kept_older = OURS[len(OURS) - keep + 1 :]
    assert archives_of_2026(backup_folder) == [*kept_older, NEWEST]
    assert sorted(path.name for path in removed) == OURS[: len(OURS) - keep + 1]


def test_prune_leaves_other_files(backup_folder):
    prune(backup_folder, 1)

    assert (backup_folder / "backup_20200101_000000.tar.gz").read_bytes() == b"odoo dump"
    assert (backup_folder / "backup_20250101_000000.tar.gz").is_file()
    assert (backup_folder / "backup_20250102_000000.tar.gz").is_file()
    assert (backup_folder / "pre_restore_20200101_000000.tar.gz").is_file()
    assert (backup_folder / "backup_copy.tar.gz").is_file()
    assert (backup_folder / "backup_20200102_000000.tar.gz").is_dir()
    assert (backup_folder / "notes.txt").read_text() == "keep me"


def test_prune_keep_more_than_present(backup_folder):
    removed = prune(backup_folder, 10)

    assert removed == []
    assert archives_of_2026(backup_folder) == [*OURS, NEWEST]


def test_prune_orders_by_manifest_time(backup_folder):
    # The oldest archive, renamed as if made in 2099.
    renamed = backup_folder / "backup_20990101_000000.tar.gz"
    (backup_folder / OURS[0]).rename(renamed)

    removed = prune(backup_folder, 2)

    assert renamed in removed
    assert archives_of_2026(backup_folder) == [OURS[-1], NEWEST]
    assert not renamed.exists()


def test_prune_never_deletes_newest(backup_folder, make_archive):
    # The clock went back: the archive just written looks older than all the others.
    newest = make_archive(
        "backup_20260107_020000.tar.gz",
        directory=backup_folder,
        database=b"db",
        install_id=INSTALL,
        created_unix_time=FIRST_TIME - 10 * DAY,
    )

    removed = prune_backups(directory=backup_folder, keep=1, install_id=INSTALL, newest=newest)

    assert newest.is_file()
    assert newest not in removed
    assert archives_of_2026(backup_folder) == [newest.name]


def test_prune_skips_archive_deleted_meanwhile(backup_folder, monkeypatch):
    read_manifest = retention.read_manifest
    vanished = backup_folder / OURS[0]

    def read_then_lose(path):
        manifest = read_manifest(path)
        if path == vanished:
            # Another run deletes it between the listing and the deletion.
            path.unlink()
        return manifest

    monkeypatch.setattr(retention, "read_manifest", read_then_lose)

    removed = prune(backup_folder, 1)

    assert vanished not in removed
    assert sorted(path.name for path in removed) == OURS[1:]
    assert archives_of_2026(backup_folder) == [NEWEST]


@pytest.mark.parametrize("keep", ["0", "-3"])
def test_backup_rejects_keep_below_one(tmp_path, keep):
    with pytest.raises(CommandError, match=f"--keep must be 1 or more, got {keep}"):
        call_command("backup", "--output", str(tmp_path), "--keep", keep, verbosity=0)

    assert list(tmp_path.iterdir()) == []
