"""The backup archive: a gzip-compressed tar file with a manifest and checksummed parts.

Layout of `backup_YYYYMMDD_HHMMSS.tar.gz`:

- `manifest.json`, always the first member, so that a reader can tell a portal archive
  from any other file without decompressing the rest;
- the database part (`database.dump` for PostgreSQL, `database.sqlite3` for SQLite);
- `media/<path>` for every file under MEDIA_ROOT.

The manifest lists every other member with its SHA-256 and size. `extract_archive` reads
the archive once, from start to end, and rejects it when a member is missing, unlisted,
unsafe or does not match its checksum.
"""

import contextlib
import errno
import gzip
import hashlib
import io
import json
import logging
import os
import tarfile
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.utils.translation import gettext_noop

from cpr_portal.messages import Message

from .errors import BackupError

logger = logging.getLogger(__name__)

FORMAT = "cpr-portal-backup"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
MEDIA_PREFIX = "media/"
CHUNK_SIZE = 1024 * 1024
# A manifest lists about 150 bytes per media file, so this allows some 200,000 files and
# keeps a damaged or hostile manifest from being read into memory whole.
MAX_MANIFEST_SIZE = 32 * 1024 * 1024
PARTIAL_NAME = "archive.tar.gz.partial"

# Errors that the gzip and tar readers raise on a corrupt, truncated or foreign file.
READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, UnicodeDecodeError)


@dataclass(frozen=True)
class FileEntry:
    """Checksum and size in bytes of one archive member."""

    sha256: str
    size: int

    def as_json(self) -> dict:
        return {"sha256": self.sha256, "size": self.size}


def copy_with_checksum(source, destination: Path | None = None) -> FileEntry:
    """Read the open binary file `source` to its end and return its checksum and size.

    With `destination`, the bytes read are also written to that file.
    """
    digest = hashlib.sha256()
    size = 0
    with open(destination, "wb") if destination else contextlib.nullcontext() as target:
        while chunk := source.read(CHUNK_SIZE):
            digest.update(chunk)
            size += len(chunk)
            if target is not None:
                target.write(chunk)
    return FileEntry(sha256=digest.hexdigest(), size=size)


def file_entry(path: Path) -> FileEntry:
    """Return the checksum and size of the file at `path`."""
    with open(path, "rb") as source:
        return copy_with_checksum(source)


def media_files(media_root: Path) -> list[Path]:
    """Return the regular files under `media_root`, sorted, without following links.

    Symbolic links are left out, because a link could point outside MEDIA_ROOT.
    """
    if not media_root.is_dir():
        return []
    found = []
    for directory, _dirnames, filenames in os.walk(media_root):
        for filename in filenames:
            path = Path(directory) / filename
            if path.is_file() and not path.is_symlink():
                found.append(path)
    return sorted(found)


def stage_media(media_root: Path, staging_dir: Path) -> dict[str, FileEntry]:
    """Copy every media file into `staging_dir`, keyed by its archive member name.

    The copies, not the live files, go into the archive, so an upload that changes a file
    while the backup runs cannot make the archive disagree with its own checksums.
    A file deleted (or replaced by a folder) after the folder was listed is left out, as
    if the backup had started a moment later.
    """
    entries = {}
    for path in media_files(media_root):
        name = MEDIA_PREFIX + path.relative_to(media_root).as_posix()
        target = staging_dir / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            source = open(path, "rb")  # noqa: SIM115 (closed by the with statement below)
        except (FileNotFoundError, IsADirectoryError):
            logger.warning("Media file %s was removed while the backup ran; left out", path)
            continue
        except OSError as error:
            raise BackupError(
                gettext_noop(
                    "Cannot read the media file %(path)s: %(error)s. Make it readable by "
                    "the user that runs the backup, then run the backup again."
                ),
                path=path,
                error=error.strerror,
            ) from error
        with source:
            entries[name] = copy_with_checksum(source, target)
    return entries


def write_archive(candidates: Iterable[Path], manifest: dict, staging_dir: Path) -> Path:
    """Write the archive of the files `manifest` lists from `staging_dir`; return its path.

    The archive is written inside `staging_dir`, which must be on the same file system as
    the candidates, and then linked under the first of `candidates` that no file has. A
    crash never leaves a half-written file under an archive name, and two runs that
    finish at once never write to or replace the same file. The file is readable by its
    owner only, because it contains members' personal data.
    """
    partial = staging_dir / PARTIAL_NAME
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            data = json.dumps(manifest, indent=2, sort_keys=True).encode()
            info = _member_info(MANIFEST_NAME, len(data))
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(data))
            for name in manifest["files"]:
                source = staging_dir / name
                with open(source, "rb") as member:
                    info = _member_info(name, source.stat().st_size)
                    info.mtime = int(source.stat().st_mtime)
                    tar.addfile(info, member)
        return _claim_name(partial, candidates)
    finally:
        partial.unlink(missing_ok=True)


def _claim_name(partial: Path, candidates: Iterable[Path]) -> Path:
    """Give `partial` the first free name of `candidates`, never replacing a file."""
    tried = []
    for candidate in candidates:
        tried.append(candidate.name)
        try:
            # A hard link fails when the name exists, so it claims the name atomically.
            os.link(partial, candidate)
            return candidate
        except FileExistsError:
            continue
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
                raise
        # A file system without hard links: reserve the name with an empty file that no
        # other run can create, then move the archive over it.
        try:
            os.close(os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            continue
        os.replace(partial, candidate)
        return candidate
    raise BackupError(
        gettext_noop(
            "Every archive name tried is taken (%(names)s). Remove old archives or "
            "wait a minute, then run the backup again."
        ),
        names=", ".join(tried),
    )


def _member_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    return info


def read_manifest(path: Path) -> dict | None:
    """Return the manifest of a portal archive, or None for any other file.

    Only the first member is read, which is cheap even for a large archive.
    """
    try:
        with tarfile.open(path, mode="r|gz") as tar:
            member = tar.next()
            if member is None or member.name != MANIFEST_NAME or not member.isfile():
                return None
            if member.size > MAX_MANIFEST_SIZE:
                return None
            manifest = json.load(tar.extractfile(member))
    except (OSError, ValueError, *READ_ERRORS):
        return None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        return None
    return manifest


def extract_archive(path: Path, destination: Path) -> dict:
    """Check the archive at `path` completely, extract it into `destination`, return the manifest.

    Raises BackupError when the file is missing, is not a gzip-compressed tar file, is
    truncated or corrupt, has no portal manifest, or has a member that is unsafe, not
    listed in the manifest, missing, or does not match its checksum.
    """
    if not path.is_file():
        raise BackupError(
            gettext_noop("Backup archive %(path)s not found: give the path of a .tar.gz file."),
            path=path,
        )
    try:
        with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as compressed:
            with tarfile.open(fileobj=compressed, mode="r|") as tar:
                manifest = _extract_members(path, tar, destination)
            # The tar reader stops at the end-of-archive marker. Reading on to the end of
            # the gzip stream makes gzip check its CRC and length trailer as well.
            while compressed.read(CHUNK_SIZE):
                pass
    except BackupError:
        raise
    except (OSError, *READ_ERRORS) as error:
        raise BackupError(
            gettext_noop(
                "Backup archive %(path)s is corrupt or truncated and cannot be read "
                "(%(error)s). Nothing was changed. Use another copy of the archive."
            ),
            path=path,
            error=error,
        ) from error
    return manifest


def _extract_members(path: Path, tar: tarfile.TarFile, destination: Path) -> dict:
    first = tar.next()
    if first is None or first.name != MANIFEST_NAME or not first.isfile():
        raise BackupError(
            gettext_noop(
                "%(path)s is not a CPR Portal backup: its first member is not %(manifest)s. "
                "Nothing was changed."
            ),
            path=path,
            manifest=MANIFEST_NAME,
        )
    if first.size > MAX_MANIFEST_SIZE:
        raise BackupError(
            gettext_noop(
                "%(path)s is not a CPR Portal backup or its manifest is damaged: "
                "%(manifest)s is %(size)d bytes, more than the %(limit)d bytes a portal "
                "manifest can be. Nothing was changed."
            ),
            path=path,
            manifest=MANIFEST_NAME,
            size=first.size,
            limit=MAX_MANIFEST_SIZE,
        )
    manifest = _parse_manifest(path, tar.extractfile(first).read())
    expected = {
        name: FileEntry(sha256=entry["sha256"], size=entry["size"])
        for name, entry in manifest["files"].items()
    }
    seen = set()
    # TarFile iteration would start again at the manifest; next() continues after it.
    while (member := tar.next()) is not None:
        name = member.name
        if name not in expected or name in seen:
            raise BackupError(
                gettext_noop(
                    "Backup archive %(path)s contains %(name)r, which its manifest does not "
                    "list (or lists once only). The archive was altered; nothing was changed."
                ),
                path=path,
                name=name,
            )
        if not member.isfile():
            raise BackupError(
                gettext_noop(
                    "Backup archive %(path)s contains %(name)r, which is not a regular file. "
                    "Nothing was changed."
                ),
                path=path,
                name=name,
            )
        if member.size != expected[name].size:
            # Checked before the member is read, so an oversized member is never copied.
            raise BackupError(
                gettext_noop(
                    "Backup archive %(path)s: %(name)s is %(size)d bytes, but the manifest "
                    "lists %(expected)d bytes. The archive was altered; nothing was "
                    "changed. Use another copy of the archive."
                ),
                path=path,
                name=name,
                size=member.size,
                expected=expected[name].size,
            )
        seen.add(name)
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        actual = copy_with_checksum(tar.extractfile(member), target)
        if actual != expected[name]:
            raise BackupError(
                gettext_noop(
                    "Backup archive %(path)s: %(name)s does not match its checksum in the "
                    "manifest (expected SHA-256 %(expected_sha256)s, %(expected_size)d bytes; "
                    "found %(sha256)s, %(size)d bytes). Nothing was changed. "
                    "Use another copy of the archive."
                ),
                path=path,
                name=name,
                expected_sha256=expected[name].sha256,
                expected_size=expected[name].size,
                sha256=actual.sha256,
                size=actual.size,
            )
    missing = sorted(set(expected) - seen)
    if missing:
        raise BackupError(
            gettext_noop(
                "Backup archive %(path)s lacks %(names)s, which its manifest lists. "
                "The archive is truncated or was altered; nothing was changed."
            ),
            path=path,
            names=", ".join(missing),
        )
    return manifest


def _parse_manifest(path: Path, data: bytes) -> dict:
    """Return the manifest, checked for the fields that restore and verify rely on."""
    problem = Message(
        gettext_noop("%(path)s is not a CPR Portal backup or its manifest is damaged"), path=path
    )
    try:
        manifest = json.loads(data)
    except ValueError as error:
        raise BackupError(
            gettext_noop("%(problem)s: %(manifest)s is not JSON (%(error)s)."),
            problem=problem,
            manifest=MANIFEST_NAME,
            error=error,
        ) from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(
            gettext_noop("%(problem)s: %(manifest)s has no format %(format)r."),
            problem=problem,
            manifest=MANIFEST_NAME,
            format=FORMAT,
        )
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(
            gettext_noop(
                "%(path)s has archive format version %(version)r; this portal reads version "
                "%(supported)s. Restore it with the portal version that made it "
                "(%(portal_version)s)."
            ),
            path=path,
            version=manifest.get("format_version"),
            supported=FORMAT_VERSION,
            portal_version=manifest.get("portal_version", "unknown"),
        )
    checks = {
        "database": isinstance(manifest.get("database"), dict)
        and isinstance(manifest["database"].get("vendor"), str)
        and isinstance(manifest["database"].get("file"), str),
        "migrations": _is_str_mapping(manifest.get("migrations"), list),
        "tables": _is_str_mapping(manifest.get("tables"), int),
        "files": _is_str_mapping(manifest.get("files"), dict)
        and all(
            isinstance(entry.get("sha256"), str) and isinstance(entry.get("size"), int)
            for entry in manifest["files"].values()
        ),
    }
    for field, valid in checks.items():
        if not valid:
            raise BackupError(
                gettext_noop("%(problem)s: the field %(field)r is missing or malformed."),
                problem=problem,
                field=field,
            )
    for name in manifest["files"]:
        if not is_safe_member_name(name):
            raise BackupError(
                gettext_noop(
                    "%(problem)s: it lists the unsafe path %(name)r. Nothing was changed."
                ),
                problem=problem,
                name=name,
            )
    if manifest["database"]["file"] not in manifest["files"]:
        raise BackupError(
            gettext_noop("%(problem)s: the database part is not among the listed files."),
            problem=problem,
        )
    return manifest


def _is_str_mapping(value, value_type) -> bool:
    return isinstance(value, dict) and all(
        isinstance(key, str) and isinstance(item, value_type) for key, item in value.items()
    )


def is_safe_member_name(name: str) -> bool:
    """Tell whether `name` is a plain relative path that stays inside the extraction folder."""
    path = PurePosixPath(name)
    return (
        bool(name)
        and not path.is_absolute()
        and "\\" not in name
        and all(part not in ("", ".", "..") for part in name.split("/"))
    )
