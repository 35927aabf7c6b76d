"""Helpers for the backup tests: table content hashes, subprocess runs, archive surgery."""

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from django.apps import apps
from django.db import connections

from backup_restore.archive import MANIFEST_NAME, file_entry, write_archive

PROJECT_DIR = Path(__file__).resolve().parents[2]


def table_hashes(using: str = "default") -> dict[str, str]:
    """Return a SHA-256 of every table's rows, read in primary-key order, by table name.

    Tables without a model (django_migrations) are ordered by every column.
    """
    connection = connections[using]
    primary_keys = {
        model._meta.db_table: model._meta.pk.column
        for model in apps.get_models(include_auto_created=True)
    }
    quote = connection.ops.quote_name
    hashes = {}
    with connection.cursor() as cursor:
        for table in sorted(connection.introspection.table_names(cursor)):
            columns = connection.introspection.get_table_description(cursor, table)
            if table in primary_keys:
                order = quote(primary_keys[table])
            else:
                order = ", ".join(str(position) for position in range(1, len(columns) + 1))
            cursor.execute(f"SELECT * FROM {quote(table)} ORDER BY {order}")  # noqa: S608
            digest = hashlib.sha256()
            for row in cursor.fetchall():
                digest.update(repr(row).encode())
            hashes[table] = digest.hexdigest()
    return hashes


def project_environment(**overrides: str) -> dict[str, str]:
    """Return the environment for a manage.py subprocess with the test settings."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "DJANGO_MEDIA_ROOT", "CPR_BACKUP_DIR"}
    }
    environment["DJANGO_SETTINGS_MODULE"] = "cpr_portal.settings_test"
    environment.update(overrides)
    return environment


def run_python(args: list[str], environment: dict[str, str]) -> subprocess.CompletedProcess:
    """Run this Python with `args` in the project folder and return the finished process."""
    return subprocess.run(  # noqa: S603
        [sys.executable, *args],
        cwd=PROJECT_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_manage(args: list[str], environment: dict[str, str]) -> subprocess.CompletedProcess:
    return run_python(["manage.py", *args], environment)


# Runs in a subprocess with the project's settings: optionally fills every model and
# writes the media files, then prints the table hashes as JSON.
SNAPSHOT_SCRIPT = """
import json, sys
from pathlib import Path
import django
django.setup()
from django.conf import settings
from tests.backup_restore.helpers import table_hashes
from tests.factories.every_model import (
    fill_every_model, models_without_rows, read_media_files, write_media_files,
)
if sys.argv[1] == "fill":
    fill_every_model()
    write_media_files(Path(settings.MEDIA_ROOT))
media = read_media_files(Path(settings.MEDIA_ROOT)) if Path(settings.MEDIA_ROOT).is_dir() else {}
print(json.dumps({
    "tables": table_hashes(),
    "empty_models": models_without_rows(),
    "media": {name: content.hex() for name, content in media.items()},
}))
"""


def snapshot_in_subprocess(environment: dict[str, str], *, fill: bool = False) -> dict:
    """Return table hashes, empty models and media files of the database in `environment`."""
    result = run_python(["-c", SNAPSHOT_SCRIPT, "fill" if fill else "read"], environment)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def read_members(archive: Path) -> tuple[dict, dict[str, bytes]]:
    """Return the manifest and the other members of a portal archive."""
    members = {}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar.getmembers():
            members[member.name] = tar.extractfile(member).read()
    manifest = json.loads(members.pop(MANIFEST_NAME))
    return manifest, members


def rewrite_archive(
    source: Path,
    destination: Path,
    *,
    manifest_changes: dict | None = None,
    replace: dict[str, bytes] | None = None,
    update_checksums: bool = True,
) -> Path:
    """Write a copy of `source` with some members or manifest fields changed.

    With `update_checksums`, the manifest lists the new contents, so the copy passes the
    checksum checks; without it the manifest keeps the old checksums.
    """
    manifest, members = read_members(source)
    members.update(replace or {})
    staging = destination.parent / f"{destination.name}.staging"
    for name, content in members.items():
        path = staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        if update_checksums:
            manifest["files"][name] = file_entry(path).as_json()
    manifest.update(manifest_changes or {})
    return write_archive([destination], manifest, staging)


def tar_gz(destination: Path, members: dict[str, bytes]) -> Path:
    """Write a plain gzip-compressed tar file with `members`, in order."""
    with tarfile.open(destination, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, fileobj=io.BytesIO(content))
    return destination
