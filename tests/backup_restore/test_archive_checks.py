"""A bad archive is rejected with a clear error before anything is changed.

These checks run before the database is read, so they run on either engine.
"""

import json

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from backup_restore import archive as archive_module
from backup_restore.archive import extract_archive, read_manifest
from backup_restore.errors import BackupError

from .helpers import rewrite_archive, tar_gz

pytestmark = pytest.mark.django_db


def restore_fails(archive, *extra) -> str:
    with pytest.raises(CommandError) as raised:
        call_command("restore", str(archive), *extra, verbosity=0)
    return str(raised.value)


def test_restore_corrupt_archive(make_archive, existing_data):
    # Compressible content, so the damaged bytes fall in the deflate stream.
    archive = make_archive(database=b"row of data " * 50_000)
    data = bytearray(archive.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(64)
    archive.write_bytes(bytes(data))
    before = existing_data()

    message = restore_fails(archive, "--force")

    # Damaged deflate data either fails to decompress or decompresses to wrong bytes.
    assert "corrupt or truncated" in message or "does not match its checksum" in message
    assert str(archive) in message
    assert existing_data() == before


def test_restore_truncated_archive(make_archive, existing_data):
    archive = make_archive()
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    before = existing_data()

    message = restore_fails(archive, "--force")

    assert "corrupt or truncated" in message
    assert existing_data() == before


def test_restore_archive_missing_gzip_trailer(make_archive, existing_data):
    # The tar data is complete; only gzip's CRC and length trailer is cut off.
    archive = make_archive()
    archive.write_bytes(archive.read_bytes()[:-8])
    before = existing_data()

    message = restore_fails(archive, "--force")

    assert "corrupt or truncated" in message
    assert existing_data() == before


def test_restore_wrong_checksum(make_archive, existing_data, tmp_path):
    archive = make_archive(media={"photo.png": b"original"})
    altered = rewrite_archive(
        archive,
        tmp_path / "altered.tar.gz",
        replace={"media/photo.png": b"replaced"},
        update_checksums=False,
    )
    before = existing_data()

    message = restore_fails(altered, "--force")

    assert "media/photo.png does not match its checksum" in message
    assert existing_data() == before


def test_restore_foreign_text_file(existing_data, tmp_path):
    foreign = tmp_path / "backup_20260101_120000.tar.gz"
    foreign.write_text("not an archive\n")
    before = existing_data()

    message = restore_fails(foreign, "--force")

    assert "corrupt or truncated" in message
    assert existing_data() == before


def test_restore_tar_without_manifest(existing_data, tmp_path):
    # Shaped like an Odoo-era backup: a database dump and a filestore, no manifest.
    foreign = tar_gz(
        tmp_path / "backup_20240101_000000.tar.gz",
        {"dump.sql": b"CREATE TABLE res_partner ();", "filestore/ab/cd": b"x"},
    )
    before = existing_data()

    message = restore_fails(foreign, "--force")

    assert "is not a CPR Portal backup" in message
    assert existing_data() == before


def test_restore_foreign_manifest(existing_data, tmp_path):
    foreign = tar_gz(
        tmp_path / "other.tar.gz",
        {"manifest.json": json.dumps({"format": "other-tool", "files": {}}).encode()},
    )
    before = existing_data()

    message = restore_fails(foreign, "--force")

    assert "is not a CPR Portal backup" in message
    assert existing_data() == before


def test_restore_unlisted_member(make_archive, existing_data, tmp_path):
    archive = make_archive()
    manifest_bytes = tar_members(archive)
    extra = tar_gz(tmp_path / "extra.tar.gz", {**manifest_bytes, "media/extra.txt": b"x"})
    before = existing_data()

    message = restore_fails(extra, "--force")

    assert "'media/extra.txt', which its manifest does not list" in message
    assert existing_data() == before


def test_restore_missing_member(make_archive, existing_data, tmp_path):
    archive = make_archive(media={"a.txt": b"a"})
    members = tar_members(archive)
    del members["media/a.txt"]
    missing = tar_gz(tmp_path / "missing.tar.gz", members)
    before = existing_data()

    message = restore_fails(missing, "--force")

    assert "lacks media/a.txt" in message
    assert existing_data() == before


@pytest.mark.parametrize("unsafe", ["../outside.txt", "/etc/passwd", "media/../../x"])
def test_restore_unsafe_path(make_archive, existing_data, tmp_path, unsafe):
    members = tar_members(make_archive())
    manifest = json.loads(members["manifest.json"])
    manifest["files"][unsafe] = {"sha256": "0" * 64, "size": 1}
    members["manifest.json"] = json.dumps(manifest).encode()
    archive = tar_gz(tmp_path / "unsafe.tar.gz", {**members, unsafe: b"x"})
    before = existing_data()

    message = restore_fails(archive, "--force")

    assert "manifest is damaged" in message
    assert existing_data() == before


def test_restore_archive_newer_than_code(make_archive, existing_data):
    from .conftest import current_migrations

    migrations = current_migrations()
    migrations["members"].append("0099_from_the_future")
    migrations["from_the_future"] = ["0001_initial"]
    archive = make_archive(manifest_changes={"migrations": migrations, "portal_version": "9.0.0"})
    before = existing_data()

    message = restore_fails(archive, "--force")

    assert "is newer than this code" in message
    assert "members.0099_from_the_future" in message
    assert "from_the_future.0001_initial" in message
    assert "portal 9.0.0" in message
    assert existing_data() == before


def test_restore_other_engine(make_archive, existing_data):
    other = "sqlite" if connection.vendor == "postgresql" else "postgresql"
    archive = make_archive(
        manifest_changes={"database": {"vendor": other, "file": "database.part"}}
    )
    before = existing_data()

    message = restore_fails(archive, "--force")

    assert f"contains a {other} database" in message
    assert existing_data() == before


def test_restore_unreadable_database_part(make_archive, existing_data):
    # Correct checksums, but the database part is random bytes.
    archive = make_archive()
    before = existing_data()

    message = restore_fails(archive, "--force")

    assert "database part of the archive" in message
    assert existing_data() == before


def test_restore_missing_archive(existing_data, tmp_path):
    message = restore_fails(tmp_path / "nowhere.tar.gz")

    assert "not found" in message
    assert str(tmp_path / "nowhere.tar.gz") in message


def test_verify_rejects_corrupt_archive(make_archive):
    archive = make_archive()
    archive.write_bytes(archive.read_bytes()[:1000])

    with pytest.raises(CommandError, match="corrupt or truncated"):
        call_command("verify_backup", str(archive), verbosity=0)


def tar_members(archive) -> dict[str, bytes]:
    """Return every member of a tar.gz file, manifest included, in archive order."""
    import tarfile

    with tarfile.open(archive, "r:gz") as tar:
        return {member.name: tar.extractfile(member).read() for member in tar.getmembers()}


def test_verify_rejects_archive_newer_than_code(make_archive):
    from .conftest import current_migrations

    migrations = current_migrations()
    migrations["members"].append("0099_from_the_future")
    archive = make_archive(manifest_changes={"migrations": migrations})

    with pytest.raises(CommandError, match="is newer than this code"):
        call_command("verify_backup", str(archive), verbosity=0)


def test_oversized_member_rejected_unread(make_archive, existing_data, tmp_path):
    members = tar_members(make_archive(media={"photo.png": b"small"}))
    members["media/photo.png"] = bytes(2_000_000)
    oversized = tar_gz(tmp_path / "oversized.tar.gz", members)
    before = existing_data()

    message = restore_fails(oversized, "--force")

    assert "media/photo.png is 2000000 bytes, but the manifest lists 5 bytes" in message
    assert existing_data() == before
    with pytest.raises(BackupError, match="2000000 bytes"):
        extract_archive(oversized, tmp_path / "extracted")
    assert not (tmp_path / "extracted" / "media" / "photo.png").exists()


def test_oversized_manifest_rejected(make_archive, existing_data, monkeypatch):
    monkeypatch.setattr(archive_module, "MAX_MANIFEST_SIZE", 10_000)
    archive = make_archive(manifest_changes={"padding": "x" * 20_000})
    before = existing_data()

    message = restore_fails(archive, "--force")

    assert "more than the 10000 bytes" in message
    assert read_manifest(archive) is None
    assert existing_data() == before


def test_backup_output_not_a_folder(tmp_path):
    not_a_folder = tmp_path / "backups"
    not_a_folder.write_text("a file")

    with pytest.raises(CommandError, match=f"Cannot use {not_a_folder} as the backup folder"):
        call_command("backup", "--output", str(not_a_folder), verbosity=0)

    assert not_a_folder.read_text() == "a file"


def test_backup_output_not_writable():
    with pytest.raises(CommandError, match="Cannot use /proc/cpr-backups as the backup folder"):
        call_command("backup", "--output", "/proc/cpr-backups", verbosity=0)
