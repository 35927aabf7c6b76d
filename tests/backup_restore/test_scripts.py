"""scripts/backup.sh and scripts/restore.sh: shellcheck, usage errors, and a full run.

The full run replaces only the docker CLI (tests/backup_restore/bin/docker), which runs
the container's commands on this machine against a SQLite file.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backup_restore.archive import read_manifest

from .helpers import PROJECT_DIR, run_manage, snapshot_in_subprocess, tar_gz
from .test_sqlite import sqlite_environment

SCRIPTS = sorted((PROJECT_DIR / "scripts").glob("*.sh"))
FAKE_DOCKER_DIR = Path(__file__).resolve().parent / "bin"
DAY = 24 * 60 * 60


@pytest.mark.shellcheck
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda path: path.name)
def test_shellcheck_clean(script):
    result = subprocess.run(  # noqa: S603
        ["shellcheck", "--shell=bash", str(script)],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def run_script(name: str, *args: str, environment: dict | None = None, cwd: Path = PROJECT_DIR):
    return subprocess.run(  # noqa: S603
        ["bash", str(PROJECT_DIR / "scripts" / name), *args],  # noqa: S607
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    ("script", "args", "message"),
    [
        ("backup.sh", ["--keep"], "--keep needs a number"),
        ("backup.sh", ["--keep", "0"], "--keep takes a whole number of 1 or more, got '0'"),
        ("backup.sh", ["--keep", "two"], "--keep takes a whole number of 1 or more, got 'two'"),
        ("backup.sh", ["--daily"], "unknown argument '--daily'"),
        ("restore.sh", [], "missing ARCHIVE"),
        ("restore.sh", ["--yes", "a.tar.gz"], "unknown option '--yes'"),
        ("restore.sh", ["a.tar.gz", "b.tar.gz"], "give one archive"),
        ("restore.sh", ["absent.tar.gz"], "archive 'absent.tar.gz' not found"),
    ],
)
def test_script_usage_error(script, args, message, tmp_path):
    result = run_script(script, *args, cwd=tmp_path)

    assert result.returncode == 2
    assert message in result.stderr
    assert "Usage:" in result.stderr


@pytest.fixture
def compose_stand_in(tmp_path, make_archive):
    """An environment in which `docker` runs the portal on a migrated SQLite file."""
    host_dir = tmp_path / "host-backups"
    container_dir = tmp_path / "container-backups"
    container_dir.mkdir()
    environment = sqlite_environment(tmp_path, "site")
    environment.update(
        PATH=f"{FAKE_DOCKER_DIR}:{environment['PATH']}",
        FAKE_DOCKER_LOG=str(tmp_path / "docker.log"),
        FAKE_CONTAINER_BACKUPS=str(container_dir),
        FAKE_PROJECT_DIR=str(PROJECT_DIR),
        FAKE_PYTHON=sys.executable,
        CPR_BACKUP_HOST_DIR=str(host_dir),
    )
    result = run_manage(["migrate", "--no-input", "-v0"], environment)
    assert result.returncode == 0, result.stderr
    return environment, host_dir, container_dir


def test_backup_script_copies_and_keeps(compose_stand_in, make_archive, tmp_path):
    environment, host_dir, container_dir = compose_stand_in
    first = run_script("backup.sh", environment=environment)
    assert first.returncode == 0, first.stdout + first.stderr
    first_copy = next(host_dir.glob("backup_*.tar.gz"))
    manifest = read_manifest(first_copy)
    install, created = manifest["install_id"], manifest["created_unix_time"]
    older = make_archive(
        "backup_20250101_020000.tar.gz",
        directory=host_dir,
        install_id=install,
        created_unix_time=created - 2 * DAY,
    )
    # This install's oldest archive under a name from the future, and a newer archive of
    # another install: neither name may decide.
    renamed = make_archive(
        "backup_20990101_000000.tar.gz",
        directory=host_dir,
        install_id=install,
        created_unix_time=created - 3 * DAY,
    )
    other = make_archive(
        "backup_20270101_000000.tar.gz",
        directory=host_dir,
        install_id="b" * 32,
        created_unix_time=created + DAY,
    )
    odoo = tar_gz(host_dir / "backup_20200101_000000.tar.gz", {"dump.sql": b"odoo"})

    result = run_script("backup.sh", "--keep", "2", environment=environment)

    assert result.returncode == 0, result.stdout + result.stderr
    made = sorted(container_dir.glob("backup_*.tar.gz"))
    assert len(made) == 2
    newest = host_dir / made[-1].name
    assert newest.read_bytes() == made[-1].read_bytes()
    assert first_copy.exists()
    assert not older.exists()
    assert not renamed.exists()
    assert other.exists()
    assert odoo.exists()
    assert f"Deleted old backup {older}" in result.stdout


def test_readme_cron_line_on_fresh_checkout(compose_stand_in, tmp_path):
    environment, _host_dir, container_dir = compose_stand_in
    readme = (PROJECT_DIR / "README.md").read_text()
    cron_line = re.search(r"^15 3 \* \* \* (.+)$", readme, re.MULTILINE).group(1)
    assert "/srv/cpr-portal" in cron_line
    assert "PATH=/usr/local/bin:/usr/bin:/bin" in cron_line
    # A checkout has no backups folder: it is ignored by git.
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(PROJECT_DIR / "scripts" / "backup.sh", checkout / "scripts" / "backup.sh")
    command = cron_line.replace("/srv/cpr-portal", str(checkout)).replace(
        "PATH=/usr/local/bin:/usr/bin:/bin", f"PATH={environment['PATH']}"
    )
    cron_environment = {
        key: value for key, value in environment.items() if key != "CPR_BACKUP_HOST_DIR"
    }

    result = subprocess.run(  # noqa: S603
        ["sh", "-c", command],  # noqa: S607
        env=cron_environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    copied = list((checkout / "backups").glob("backup_*.tar.gz"))
    assert [path.name for path in copied] == [
        path.name for path in container_dir.glob("backup_*.tar.gz")
    ]
    assert "Backup written" in (checkout / "backups" / "cron.log").read_text()


def test_restore_script_round_trip(compose_stand_in, tmp_path):
    environment, host_dir, container_dir = compose_stand_in
    snapshot = snapshot_in_subprocess(environment, fill=True)
    assert run_script("backup.sh", environment=environment).returncode == 0
    name = next(host_dir.glob("backup_*.tar.gz")).name
    fresh = {**environment, **sqlite_environment(tmp_path, "fresh")}
    fresh["PATH"] = environment["PATH"]

    restored = run_script("restore.sh", name, environment=fresh)

    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert snapshot_in_subprocess(fresh)["tables"] == snapshot["tables"]
    assert snapshot_in_subprocess(fresh)["media"] == snapshot["media"]
    assert list(container_dir.glob(".restore-*")) == []

    refused = run_script("restore.sh", str(host_dir / name), environment=fresh)

    assert refused.returncode == 1
    assert "already contains data" in refused.stderr

    forced = run_script("restore.sh", name, "--force", environment=fresh)

    assert forced.returncode == 0, forced.stdout + forced.stderr
    safety = list(host_dir.glob("pre_restore_*.tar.gz"))
    assert len(safety) == 1
    assert read_manifest(safety[0])["tables"] == read_manifest(host_dir / name)["tables"]


def test_restore_script_spanish_copies_safety(compose_stand_in):
    environment, host_dir, _container_dir = compose_stand_in
    assert run_script("backup.sh", environment=environment).returncode == 0
    name = next(host_dir.glob("backup_*.tar.gz")).name
    spanish = {**environment, "CPR_COMMAND_LANGUAGE": "es"}

    forced = run_script("restore.sh", name, "--force", environment=spanish)

    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert "Copia de seguridad preventiva escrita: " in forced.stdout
    assert "Safety backup written" not in forced.stdout
    # Only restore.sh copies a safety backup into the host folder.
    safety = list(host_dir.glob("pre_restore_*.tar.gz"))
    assert len(safety) == 1
    assert read_manifest(safety[0])["tables"] == read_manifest(host_dir / name)["tables"]
