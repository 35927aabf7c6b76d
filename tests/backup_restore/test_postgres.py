"""Backup, restore and verify on PostgreSQL, with pg_dump and pg_restore for real.

pg_dump runs in another process and reads committed rows only, so these tests use
transactional database access. Restores go into databases the tests create, named after
the test database, except one that restores into the configured database itself.
"""

import importlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.db.utils import load_backend
from django.utils import timezone
from psycopg import sql

from backup_restore import archive as archive_module
from backup_restore.archive import read_manifest
from backup_restore.databases import PostgresDatabase
from backup_restore.errors import BackupError
from backup_restore.services import create_backup, restore_backup, verify_backup
from tests.factories import MemberFactory
from tests.factories.every_model import (
    fill_every_model,
    models_without_rows,
    read_media_files,
    write_media_files,
)

from .helpers import (
    PROJECT_DIR,
    project_environment,
    read_members,
    rewrite_archive,
    run_manage,
    table_hashes,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def admin_database() -> PostgresDatabase:
    """The test database, reached as the configured (superuser) role for set-up work."""
    return PostgresDatabase(connection.settings_dict)


def database_names(pattern: str) -> set[str]:
    with closing(admin_database().connect()) as admin:
        rows = admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [pattern])
        return {row[0] for row in rows}


@pytest.fixture
def filled(media_root):
    """Every model has rows and MEDIA_ROOT has files; returns their hashes and contents."""
    fill_every_model()
    write_media_files(media_root)
    assert models_without_rows() == []
    return table_hashes(), read_media_files(media_root)


@pytest.fixture
def scratch_database():
    """Return a function that creates an empty database and registers it as a Django alias.

    Every database and alias made is dropped when the test ends.
    """
    made = []

    def create(**settings_changes) -> str:
        token = secrets.token_hex(4)
        name = f"{connection.settings_dict['NAME']}_scratch_{token}"
        with closing(admin_database().connect()) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        alias = f"scratch_{token}"
        # Set as a connection object only, not in the DATABASES settings: Django's test
        # case then treats it as a dynamically created connection and allows queries.
        settings_dict = {**connection.settings_dict, "NAME": name, **settings_changes}
        backend = load_backend(settings_dict["ENGINE"])
        connections[alias] = backend.DatabaseWrapper(settings_dict, alias)
        made.append((alias, name))
        return alias

    yield create
    for alias, name in made:
        connections[alias].close()
        del connections[alias]
        with closing(admin_database().connect()) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def test_round_trip_into_fresh_database(filled, backup_dir, scratch_database, settings, tmp_path):
    hashes, media = filled
    result = create_backup(output_dir=backup_dir)
    target = scratch_database()
    settings.MEDIA_ROOT = tmp_path / "restored-media"

    restored = restore_backup(archive=result.path, using=target)

    assert table_hashes(target) == hashes
    assert read_media_files(tmp_path / "restored-media") == media
    assert restored.safety_backup is None
    assert restored.migrated is False


def test_manifest_describes_backup(filled, backup_dir):
    result = create_backup(output_dir=backup_dir)

    manifest, members = read_members(result.path)
    assert manifest["database"]["vendor"] == "postgresql"
    assert manifest["database"]["server_version"]
    assert manifest["portal_version"]
    assert "0005_membership_grace_until" in manifest["migrations"]["members"]
    assert manifest["tables"]["members_member"] == 2
    assert set(members) == set(manifest["files"])
    assert {name for name in members if name.startswith("media/")} == {
        f"media/{name}" for name in filled[1]
    }


def test_restore_into_configured_database(filled, backup_dir, media_root):
    hashes, media = filled
    result = create_backup(output_dir=backup_dir)
    call_command("flush", interactive=False, verbosity=0)
    for path in media_root.rglob("*"):
        if path.is_file():
            path.unlink()
    assert table_hashes() != hashes

    call_command("restore", str(result.path), verbosity=0)

    assert table_hashes() == hashes
    assert read_media_files(media_root) == media


def test_restore_over_data_refused_without_force(filled, backup_dir, media_root):
    result = create_backup(output_dir=backup_dir)
    MemberFactory(first_name="Added", last_name="Later")
    (media_root / "readme.txt").write_text("changed since the backup")
    before = table_hashes(), read_media_files(media_root)

    with pytest.raises(CommandError, match="already contains data") as raised:
        call_command("restore", str(result.path), verbosity=0)

    assert "members_member: 3 rows" in str(raised.value)
    assert "--force" in str(raised.value)
    assert (table_hashes(), read_media_files(media_root)) == before
    assert list(backup_dir.glob("pre_restore_*")) == []


def test_restore_over_data_with_force(filled, backup_dir, media_root, tmp_path):
    hashes, media = filled
    result = create_backup(output_dir=backup_dir)
    MemberFactory(first_name="Added", last_name="Later")
    (media_root / "readme.txt").write_text("changed since the backup")
    (media_root / "uploaded-after.txt").write_text("not in the archive")
    changed = table_hashes()

    restored = restore_backup(archive=result.path, force=True, safety_dir=tmp_path / "safety")

    assert table_hashes() == hashes
    assert read_media_files(media_root) == {**media, "uploaded-after.txt": b"not in the archive"}
    assert restored.media_kept == ["uploaded-after.txt"]
    # The safety backup contains the data as it was just before the restore.
    assert restored.safety_backup.parent == tmp_path / "safety"
    assert restored.safety_backup.name.startswith("pre_restore_")
    safety_manifest = read_manifest(restored.safety_backup)
    assert safety_manifest["tables"]["members_member"] == 3
    restore_backup(archive=restored.safety_backup, force=True, safety_dir=tmp_path / "safety")
    assert table_hashes() == changed


def test_restore_as_role_not_owning_schema(filled, backup_dir, scratch_database, settings):
    hashes, _media = filled
    result = create_backup(output_dir=backup_dir)
    role = f"cpr_backup_role_{secrets.token_hex(4)}"
    with closing(admin_database().connect()) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        target = scratch_database(USER=role, PASSWORD="")
        owner = PostgresDatabase(
            {**connection.settings_dict, "NAME": connections[target].settings_dict["NAME"]}
        )
        with closing(owner.connect()) as admin:
            admin.execute(
                sql.SQL("GRANT CREATE, USAGE ON SCHEMA public TO {}").format(sql.Identifier(role))
            )
        settings.MEDIA_ROOT = Path(settings.MEDIA_ROOT).parent / "role-media"

        restore_backup(archive=result.path, using=target)

        assert table_hashes(target) == hashes
        with closing(owner.connect()) as admin:
            owners = admin.execute(
                "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        assert owners == [(role,)]

        # A table the role does not own is a real error: the restore fails and rolls back.
        with closing(owner.connect()) as admin:
            admin.execute("ALTER TABLE members_member OWNER TO CURRENT_USER")
            for grant in [
                "GRANT SELECT ON members_member TO {}",
                "GRANT SELECT ON SEQUENCE members_member_id_seq TO {}",
            ]:
                admin.execute(sql.SQL(grant).format(sql.Identifier(role)))
        with pytest.raises(BackupError, match="must be owner") as raised:
            restore_backup(archive=result.path, using=target, force=True)
        assert "rolled back" in str(raised.value)
        assert table_hashes(target) == hashes
    finally:
        # The role's database must go before the role; the fixture drops it again, harmlessly.
        connections[target].close()
        with closing(admin_database().connect()) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(connections[target].settings_dict["NAME"])
                )
            )
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_archive_older_than_code_is_migrated(backup_dir, scratch_database, media_root):
    source = scratch_database()
    call_command("migrate", database=source, verbosity=0)
    call_command("migrate", "billing", "0001", database=source, verbosity=0)
    older = create_backup(output_dir=backup_dir, using=source)
    assert "0002_invoice_kind_and_refund_expiry" not in older.manifest["migrations"]["billing"]
    target = scratch_database()

    restored = restore_backup(archive=older.path, using=target)

    assert restored.migrated is True
    with connections[target].cursor() as cursor:
        cursor.execute("SELECT name FROM django_migrations WHERE app = 'billing' ORDER BY id")
        applied = [row[0] for row in cursor.fetchall()]
    assert applied == [
        "0001_initial",
        "0002_invoice_kind_and_refund_expiry",
        "0003_invoiceitem",
        "0004_gateway_labels",
    ]


def test_restore_drops_tables_archive_lacks(filled, backup_dir, scratch_database, media_root):
    hashes, _media = filled
    result = create_backup(output_dir=backup_dir)
    target = scratch_database()
    with connections[target].cursor() as cursor:
        cursor.execute("CREATE TABLE outbox_email (id bigint PRIMARY KEY)")

    restore_backup(archive=result.path, using=target)

    assert table_hashes(target) == hashes


def test_backup_keep_spares_new_and_foreign(filled, backup_dir, make_archive):
    first = create_backup(output_dir=backup_dir, now=timezone.now() - timedelta(days=1))
    # A copy of this install's archive under a name from the future, an archive of
    # another install, and an Odoo-era file with a portal name.
    renamed = backup_dir / "backup_20990101_000000.tar.gz"
    shutil.copyfile(first.path, renamed)
    other = make_archive(
        "backup_20270101_000000.tar.gz",
        directory=backup_dir,
        install_id="b" * 32,
        created_unix_time=first.manifest["created_unix_time"] + 1,
    )
    foreign = backup_dir / "backup_20240101_000000.tar.gz"
    foreign.write_bytes(b"an Odoo-era backup")

    call_command("backup", "--keep", "1", "--output", str(backup_dir), verbosity=0)

    made = [path for path in backup_dir.glob("backup_*.tar.gz") if read_manifest(path)]
    newest = [path for path in made if path not in (other,)]
    assert len(newest) == 1
    assert newest[0].name.startswith(f"backup_{timezone.localtime():%Y%m%d}")
    assert not first.path.exists()
    assert not renamed.exists()
    assert other.is_file()
    assert foreign.read_bytes() == b"an Odoo-era backup"


# --- verify_backup ------------------------------------------------------------------------


def verify_databases() -> set[str]:
    return database_names(f"{connection.settings_dict['NAME']}_verify_%")


def test_verify_good_archive(filled, backup_dir):
    result = create_backup(output_dir=backup_dir)

    call_command("verify_backup", str(result.path), verbosity=0)

    assert verify_databases() == set()


def test_verify_drops_database_when_restore_fails(filled, backup_dir, tmp_path):
    result = create_backup(output_dir=backup_dir)
    # An uncompressed dump of the same data with one impossible date in the COPY data:
    # the table of contents reads, and pg_restore fails while loading rows.
    plain = tmp_path / "plain.dump"
    dumped = admin_database().run_client(
        ["pg_dump", "--format=custom", "--compress=0", f"--file={plain}"]
    )
    assert dumped.returncode == 0, dumped.stderr
    dump = plain.read_bytes()
    assert dump.count(b"2024-02-29") == 1
    broken = rewrite_archive(
        result.path,
        tmp_path / "broken.tar.gz",
        replace={"database.dump": dump.replace(b"2024-02-29", b"2024-02-30")},
    )

    with pytest.raises(BackupError, match="restore into the PostgreSQL database") as raised:
        verify_backup(archive=broken)

    assert "_verify_" in str(raised.value)
    assert "out of range" in str(raised.value)
    assert verify_databases() == set()


def test_verify_drops_database_when_counts_differ(filled, backup_dir, tmp_path):
    result = create_backup(output_dir=backup_dir)
    manifest, _members = read_members(result.path)
    tables = {**manifest["tables"], "members_member": manifest["tables"]["members_member"] + 1}
    wrong = rewrite_archive(
        result.path, tmp_path / "wrong.tar.gz", manifest_changes={"tables": tables}
    )

    with pytest.raises(CommandError, match="members_member: 3 in the manifest, 2 in the database"):
        call_command("verify_backup", str(wrong), verbosity=0)

    assert verify_databases() == set()


def test_verify_bad_archive_leaves_no_database(filled, backup_dir):
    result = create_backup(output_dir=backup_dir)
    result.path.write_bytes(result.path.read_bytes()[:2000])

    with pytest.raises(CommandError, match="corrupt or truncated"):
        call_command("verify_backup", str(result.path), verbosity=0)

    assert verify_databases() == set()


# --- A restore that fails or is stopped changes nothing -----------------------------------


def database_url(name: str) -> str:
    """Return a DATABASE_URL for the database `name` on the test server, as the test role."""
    settings_dict = connection.settings_dict
    credentials = settings_dict["USER"] or ""
    if settings_dict["PASSWORD"]:
        credentials += f":{settings_dict['PASSWORD']}"
    host = settings_dict["HOST"] or "localhost"
    return f"postgres://{credentials}@{host}:{settings_dict['PORT'] or 5432}/{name}"


def write_pg_restore_wrapper(directory: Path, ending: str) -> Path:
    """Write a pg_restore that runs the real one, then ends with the shell code `ending`.

    `pg_restore --list` runs unchanged. Returns the folder to put first on PATH.
    """
    real = shutil.which("pg_restore")
    directory.mkdir()
    wrapper = directory / "pg_restore"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'case " $* " in *" --list "*) exec "{real}" "$@" ;; esac\n'
        f'"{real}" "$@" || exit $?\n'
        f"{ending}\n"
    )
    wrapper.chmod(0o755)
    return directory


@pytest.fixture
def target_with_newer_table(filled, backup_dir, scratch_database, settings, tmp_path):
    """A database restored from a backup, then given a table the backup lacks.

    Returns the archive and the alias of that database.
    """
    archive = create_backup(output_dir=backup_dir).path
    target = scratch_database()
    settings.MEDIA_ROOT = tmp_path / "target-media"
    restore_backup(archive=archive, using=target)
    with connections[target].cursor() as cursor:
        cursor.execute("CREATE TABLE brk_newer (id int)")
        cursor.execute("INSERT INTO brk_newer VALUES (1)")
        cursor.execute("UPDATE members_member SET first_name = 'Changed'")
    connections[target].close()
    return archive, target


def test_failed_pg_restore_keeps_every_table(target_with_newer_table, monkeypatch, tmp_path):
    archive, target = target_with_newer_table
    before = table_hashes(target)
    assert "brk_newer" in before
    wrappers = write_pg_restore_wrapper(tmp_path / "bin", "exit 1")
    monkeypatch.setenv("PATH", f"{wrappers}:{os.environ['PATH']}")

    with pytest.raises(BackupError, match="nothing was changed") as raised:
        restore_backup(archive=archive, using=target, force=True, safety_dir=tmp_path / "safety")

    assert "rolled back" not in str(raised.value)
    assert table_hashes(target) == before


def subprocess_environment(tmp_path: Path, database_name: str, **overrides) -> dict[str, str]:
    temporary = tmp_path / "tmpdir"
    temporary.mkdir(exist_ok=True)
    return project_environment(
        DATABASE_URL=database_url(database_name),
        DJANGO_MEDIA_ROOT=str(tmp_path / "subprocess-media"),
        CPR_BACKUP_DIR=str(tmp_path / "subprocess-backups"),
        TMPDIR=str(temporary),
        **overrides,
    )


def start_stalled_command(args: list[str], environment: dict, marker: Path) -> subprocess.Popen:
    """Start manage.py in its own process group; return once pg_restore has stalled."""
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_DIR,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not marker.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            output, errors = process.communicate()
            pytest.fail(f"pg_restore never stalled:\n{output}\n{errors}")
        time.sleep(0.1)
    return process


def test_killed_restore_changes_nothing(target_with_newer_table, tmp_path):
    archive, target = target_with_newer_table
    before = table_hashes(target)
    marker = tmp_path / "stalled"
    # pg_restore has written every statement, and psql has run them, but not committed.
    wrappers = write_pg_restore_wrapper(tmp_path / "bin", f'touch "{marker}"; exec sleep 120')
    name = connections[target].settings_dict["NAME"]
    environment = subprocess_environment(tmp_path, name)
    environment["PATH"] = f"{wrappers}:{environment['PATH']}"
    connections[target].close()

    process = start_stalled_command(["restore", "--force", str(archive)], environment, marker)
    os.killpg(process.pid, signal.SIGKILL)
    process.communicate()

    assert table_hashes(target) == before
    left_behind = list((tmp_path / "tmpdir").glob("cpr-restore-*"))
    assert len(left_behind) == 1

    # The next run removes the folder that the killed one left.
    refused = run_manage(["restore", str(archive)], subprocess_environment(tmp_path, name))

    assert "already contains data" in refused.stderr
    assert list((tmp_path / "tmpdir").iterdir()) == []


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
def test_stopped_restore_cleans_up(target_with_newer_table, tmp_path, stop):
    archive, target = target_with_newer_table
    before = table_hashes(target)
    marker = tmp_path / "stalled"
    wrappers = write_pg_restore_wrapper(tmp_path / "bin", f'touch "{marker}"; exec sleep 120')
    environment = subprocess_environment(tmp_path, connections[target].settings_dict["NAME"])
    environment["PATH"] = f"{wrappers}:{environment['PATH']}"
    connections[target].close()

    process = start_stalled_command(["restore", "--force", str(archive)], environment, marker)
    process.send_signal(stop)
    _output, errors = process.communicate(timeout=60)

    assert process.returncode == 128 + stop
    assert f"Restore stopped by {stop.name}" in errors
    assert "Traceback" not in errors
    assert table_hashes(target) == before
    assert list((tmp_path / "tmpdir").iterdir()) == []


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP])
def test_stopped_verify_drops_database(filled, backup_dir, tmp_path, stop):
    archive = create_backup(output_dir=backup_dir).path
    marker = tmp_path / "stalled"
    wrappers = write_pg_restore_wrapper(tmp_path / "bin", f'touch "{marker}"; exec sleep 120')
    environment = subprocess_environment(tmp_path, connection.settings_dict["NAME"])
    environment["PATH"] = f"{wrappers}:{environment['PATH']}"

    process = start_stalled_command(["verify_backup", str(archive)], environment, marker)
    assert len(verify_databases()) == 1
    process.send_signal(stop)
    _output, errors = process.communicate(timeout=60)

    assert process.returncode == 128 + stop
    assert f"Verification stopped by {stop.name}" in errors
    assert verify_databases() == set()
    assert list((tmp_path / "tmpdir").iterdir()) == []


# --- The manifest is checked against the dump before the target is touched ----------------


def test_restore_rejects_table_missing_from_manifest(filled, backup_dir, media_root, tmp_path):
    result = create_backup(output_dir=backup_dir)
    manifest, _members = read_members(result.path)
    tables = {
        name: count for name, count in manifest["tables"].items() if name != "outbox_outboxemail"
    }
    altered = rewrite_archive(
        result.path, tmp_path / "altered.tar.gz", manifest_changes={"tables": tables}
    )
    MemberFactory(first_name="Added", last_name="Later")
    before = table_hashes(), read_media_files(media_root)

    with pytest.raises(BackupError, match="outbox_outboxemail: not in the manifest"):
        restore_backup(archive=altered, force=True, safety_dir=tmp_path / "safety")

    assert (table_hashes(), read_media_files(media_root)) == before
    assert not (tmp_path / "safety").exists()


def test_restore_rejects_wrong_row_count(filled, backup_dir, media_root, tmp_path):
    result = create_backup(output_dir=backup_dir)
    manifest, _members = read_members(result.path)
    altered = rewrite_archive(
        result.path,
        tmp_path / "altered.tar.gz",
        manifest_changes={"tables": {**manifest["tables"], "members_member": 99}},
    )
    MemberFactory(first_name="Added", last_name="Later")
    (media_root / "readme.txt").write_text("changed since the backup")
    before = table_hashes(), read_media_files(media_root)

    with pytest.raises(BackupError, match="members_member: 99 in the manifest, 2 in the database"):
        restore_backup(archive=altered, force=True, safety_dir=tmp_path / "safety")

    assert (table_hashes(), read_media_files(media_root)) == before


def migrate_with_seed(alias: str) -> None:
    """Migrate `alias` and make sure it has the seeded plan, as a fresh install has.

    The seed migration writes through the default database, so on another alias the
    plan is added here.
    """
    from members.models import Plan

    call_command("migrate", database=alias, verbosity=0)
    seed = importlib.import_module("members.migrations.0002_seed_hot_desk_plan").HOT_DESK
    Plan.objects.using(alias).get_or_create(slug=seed["slug"], defaults=seed)


def test_restore_into_migrated_database_backs_it_up(
    filled, backup_dir, scratch_database, settings, tmp_path
):
    hashes, _media = filled
    archive = create_backup(output_dir=backup_dir).path
    target = scratch_database()
    migrate_with_seed(target)
    settings.MEDIA_ROOT = tmp_path / "target-media"

    restored = restore_backup(archive=archive, using=target, safety_dir=tmp_path / "safety")

    assert table_hashes(target) == hashes
    assert restored.safety_backup.parent == tmp_path / "safety"
    assert read_manifest(restored.safety_backup)["tables"]["members_plan"] == 1


def test_restore_refuses_edited_seed_plan(filled, backup_dir, scratch_database, settings, tmp_path):
    archive = create_backup(output_dir=backup_dir).path
    target = scratch_database()
    migrate_with_seed(target)
    with connections[target].cursor() as cursor:
        cursor.execute("UPDATE members_plan SET monthly_price = 275 WHERE slug = 'hot-desk'")
    before = table_hashes(target)
    settings.MEDIA_ROOT = tmp_path / "target-media"

    with pytest.raises(BackupError, match="members_plan: 1 rows"):
        restore_backup(archive=archive, using=target, safety_dir=tmp_path / "safety")

    assert table_hashes(target) == before
    assert not (tmp_path / "safety").exists()


def test_restore_media_conflict_changes_nothing(filled, backup_dir, media_root, tmp_path):
    archive = create_backup(output_dir=backup_dir).path
    MemberFactory(first_name="Added", last_name="Later")
    shutil.rmtree(media_root / "members")
    (media_root / "members").write_text("a file where the archive has a folder")
    before = table_hashes(), read_media_files(media_root)

    with pytest.raises(BackupError, match="members is a file") as raised:
        restore_backup(archive=archive, force=True, safety_dir=tmp_path / "safety")

    assert "Nothing was changed" in str(raised.value)
    assert (table_hashes(), read_media_files(media_root)) == before
    assert not (tmp_path / "safety").exists()


# --- Names, privileges and files that change during a backup ------------------------------


def test_backup_same_second_gets_next_name(filled, backup_dir):
    moment = timezone.now()

    first = create_backup(output_dir=backup_dir, now=moment)
    second = create_backup(output_dir=backup_dir, now=moment)

    assert first.path.name == f"backup_{timezone.localtime(moment):%Y%m%d_%H%M%S}.tar.gz"
    later = timezone.localtime(moment) + timedelta(seconds=1)
    assert second.path.name == f"backup_{later:%Y%m%d_%H%M%S}.tar.gz"
    assert read_manifest(first.path)["tables"] == read_manifest(second.path)["tables"]
    assert sorted(path.name for path in backup_dir.iterdir()) == sorted(
        [first.path.name, second.path.name]
    )


def test_backup_skips_media_file_removed_meanwhile(filled, backup_dir, media_root, monkeypatch):
    listed = archive_module.media_files

    def list_then_lose(root):
        found = listed(root)
        # The file is deleted after the folder was listed, before it is copied.
        (root / "readme.txt").unlink()
        return found

    monkeypatch.setattr(archive_module, "media_files", list_then_lose)

    result = create_backup(output_dir=backup_dir)

    assert "media/readme.txt" not in result.manifest["files"]
    assert "media/notes/empty.txt" in result.manifest["files"]


@pytest.fixture
def plain_role():
    """A login role without CREATEDB and without rights on any table; dropped afterwards."""
    role = f"cpr_backup_plain_{secrets.token_hex(4)}"
    with closing(admin_database().connect()) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    yield role
    with closing(admin_database().connect()) as admin:
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def role_alias(role: str, name: str) -> str:
    alias = f"role_{role}"
    settings_dict = {**connection.settings_dict, "NAME": name, "USER": role, "PASSWORD": ""}
    connections[alias] = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, alias)
    return alias


def test_verify_without_createdb_is_clear(filled, backup_dir, plain_role):
    archive = create_backup(output_dir=backup_dir).path
    alias = role_alias(plain_role, connection.settings_dict["NAME"])
    try:
        with pytest.raises(BackupError, match="lacks the CREATEDB privilege"):
            verify_backup(archive=archive, using=alias)
    finally:
        connections[alias].close()
        del connections[alias]

    assert verify_databases() == set()


def test_restore_without_read_rights_is_clear(filled, backup_dir, plain_role, tmp_path):
    archive = create_backup(output_dir=backup_dir).path
    before = table_hashes()
    alias = role_alias(plain_role, connection.settings_dict["NAME"])
    try:
        with pytest.raises(BackupError, match="permission denied") as raised:
            restore_backup(archive=archive, using=alias, force=True, safety_dir=tmp_path)
    finally:
        connections[alias].close()
        del connections[alias]

    assert "Counting rows" in str(raised.value)
    assert table_hashes() == before
