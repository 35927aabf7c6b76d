"""Retention keeps the newest N archives that `backup` made and never touches other files."""

import os

import pytest
from django.core.management import CommandError, call_command

from backup_restore.services import prune_backups

OURS = [
    "backup_20260101_020000.tar.gz",
    "backup_20260102_020000.tar.gz",
    "backup_20260103_020000.tar.gz",
    "backup_20260104_020000.tar.gz",
    "backup_20260105_020000.tar.gz",
]


@pytest.fixture
def backup_folder(tmp_path, make_archive):
    """A folder with five portal archives and files that retention must leave alone."""
    folder = tmp_path / "backups"
    for index, name in enumerate(OURS):
        path = make_archive(name, directory=folder, database=b"db")
        # Modification times run backwards, so only the names can give the right order.
        os.utime(path, (1_000_000 - index, 1_000_000 - index))
    # Same name pattern, but made by another tool.
    (folder / "backup_20200101_000000.tar.gz").write_bytes(b"odoo dump")
    make_archive("pre_restore_20200101_000000.tar.gz", directory=folder, database=b"db")
    make_archive("backup_copy.tar.gz", directory=folder, database=b"db")
    (folder / "backup_20200102_000000.tar.gz").mkdir()
    (folder / "notes.txt").write_text("keep me")
    return folder


@pytest.mark.parametrize("keep", [1, 2, 5])
def test_prune_keeps_newest(backup_folder, keep):
    removed = prune_backups(directory=backup_folder, keep=keep)

    remaining = sorted(path.name for path in backup_folder.glob("backup_2026*"))
    assert remaining == OURS[-keep:]
    assert sorted(path.name for path in removed) == OURS[:-keep]


def test_prune_leaves_other_files(backup_folder):
    prune_backups(directory=backup_folder, keep=1)

    assert (backup_folder / "backup_20200101_000000.tar.gz").read_bytes() == b"odoo dump"
    assert (backup_folder / "pre_restore_20200101_000000.tar.gz").is_file()
    assert (backup_folder / "backup_copy.tar.gz").is_file()
    assert (backup_folder / "backup_20200102_000000.tar.gz").is_dir()
    assert (backup_folder / "notes.txt").read_text() == "keep me"


def test_prune_keep_more_than_present(backup_folder):
    removed = prune_backups(directory=backup_folder, keep=10)

    assert removed == []
    assert len(list(backup_folder.glob("backup_2026*"))) == len(OURS)


@pytest.mark.parametrize("keep", ["0", "-3"])
def test_backup_rejects_keep_below_one(tmp_path, keep):
    with pytest.raises(CommandError, match=f"--keep must be 1 or more, got {keep}"):
        call_command("backup", "--output", str(tmp_path), "--keep", keep, verbosity=0)

    assert list(tmp_path.iterdir()) == []
