import os
from pathlib import Path

import pytest
from django.db import connection

from backup_restore.archive import FORMAT, FORMAT_VERSION, file_entry, write_archive
from backup_restore.services import code_migrations, portal_version
from tests.factories import MemberFactory
from tests.factories.access import AccessKeyFactory
from tests.factories.every_model import write_media_files

from .helpers import table_hashes


@pytest.fixture
def media_root(settings, tmp_path) -> Path:
    root = tmp_path / "media"
    root.mkdir()
    settings.MEDIA_ROOT = root
    return root


@pytest.fixture
def backup_dir(settings, tmp_path) -> Path:
    directory = tmp_path / "backups"
    settings.CPR_BACKUP_DIR = directory
    return directory


def current_migrations() -> dict[str, list[str]]:
    applied: dict[str, list[str]] = {}
    for app, name in sorted(code_migrations()):
        applied.setdefault(app, []).append(name)
    return applied


@pytest.fixture
def make_archive(tmp_path):
    """Return a function that writes a portal archive whose checksums are all correct.

    Its database part is random bytes unless given, so it suits the checks that run
    before the database is read. With `install_id` and `created_unix_time`, retention
    counts it as an archive of that install, made at that time.
    """

    def make(
        name: str = "backup_20260101_120000.tar.gz",
        *,
        directory: Path | None = None,
        database: bytes | None = None,
        media: dict[str, bytes] | None = None,
        manifest_changes: dict | None = None,
        install_id: str | None = None,
        created_unix_time: int | None = None,
    ) -> Path:
        directory = directory or tmp_path / "archives"
        directory.mkdir(parents=True, exist_ok=True)
        staging = tmp_path / f"staging-{name}"
        staging.mkdir()
        parts = {"database.part": os.urandom(300_000) if database is None else database}
        parts.update({f"media/{path}": content for path, content in (media or {}).items()})
        for part, content in parts.items():
            (staging / part).parent.mkdir(parents=True, exist_ok=True)
            (staging / part).write_bytes(content)
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": "2026-01-01T12:00:00-04:00",
            "portal_version": portal_version(),
            "database": {"vendor": connection.vendor, "file": "database.part"},
            "migrations": current_migrations(),
            "tables": {"members_member": 1},
            "files": {part: file_entry(staging / part).as_json() for part in parts},
        }
        if install_id is not None:
            manifest["install_id"] = install_id
        if created_unix_time is not None:
            manifest["created_unix_time"] = created_unix_time
        manifest.update(manifest_changes or {})
        return write_archive([directory / name], manifest, staging)

    return make


@pytest.fixture
def existing_data(db, media_root):
    """Rows and media files that a failed restore must leave exactly as they were.

    Returns a function that reads the current state, to compare before and after.
    """
    AccessKeyFactory(member=MemberFactory(first_name="Keep", last_name="Me"))
    write_media_files(media_root)

    def state():
        files = {
            path.relative_to(media_root).as_posix(): path.read_bytes()
            for path in sorted(media_root.rglob("*"))
            if path.is_file()
        }
        return table_hashes(), files

    return state
