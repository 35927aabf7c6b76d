"""Dump and restore of the portal's database, one class per database engine.

PostgreSQL uses `pg_dump --format=custom`, `pg_restore` and `psql` from the PostgreSQL
client programs, which must be of the server's major version or newer. SQLite uses the
sqlite3 module's online backup API in both directions, which copies a consistent
snapshot while other connections keep working.
"""

import logging
import os
import sqlite3
import subprocess
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.db import connections
from django.utils.translation import gettext_noop

from cpr_portal.messages import Message

from . import pg_load
from .errors import BackupError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    """Contents of a dump, read from the same snapshot as the dump itself."""

    server_version: str
    migrations: dict[str, list[str]]
    tables: dict[str, int]


class Database(ABC):
    """One database, described by a Django DATABASES entry."""

    vendor: str
    dump_filename: str

    def __init__(self, settings_dict: dict):
        self.settings_dict = settings_dict

    @property
    def name(self) -> str:
        return str(self.settings_dict["NAME"])

    @abstractmethod
    def describe(self) -> Message:
        """Return a phrase naming the database for messages (str() of it is English)."""

    @abstractmethod
    def dump(self, destination: Path, *, compress_level: int | None = None) -> Snapshot:
        """Write a dump of the whole database to `destination`.

        `compress_level` (0-9) is the compression level of a compressed dump format; None
        keeps the dump program's default.
        """

    @abstractmethod
    def check_dump(self, path: Path, tables: dict[str, int]) -> None:
        """Raise BackupError unless `path` is a dump that `restore` can read.

        `tables` are the row counts by table that the manifest lists. The check reads the
        dump only, and rejects it when its tables (and, where that is cheap, its row
        counts) differ from these.
        """

    @abstractmethod
    def restore(self, path: Path, *, tables: dict[str, int]) -> None:
        """Replace the database's tables and rows with those of the dump at `path`.

        `tables` are the row counts by table of the dump, from the manifest. Any other
        table is dropped, so that `migrate` can recreate the tables of migrations that the
        dump predates. When the result would not have exactly these tables and counts, or
        anything else fails, the database is left as it was.
        """

    @abstractmethod
    def table_rows(self) -> dict[str, int]:
        """Return the row count of every table, by table name."""

    @abstractmethod
    @contextmanager
    def temporary_database(self, label: str, work_dir: Path) -> Iterator["Database"]:
        """Create an empty database of the same engine, yield it, and always remove it.

        A database that is a file goes into `work_dir`.
        """


def database_for(using: str = "default") -> Database:
    """Return the Database for a Django database alias, or raise BackupError for other engines."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        return PostgresDatabase(connection.settings_dict)
    if connection.vendor == "sqlite":
        return SqliteDatabase(connection.settings_dict)
    raise BackupError(
        gettext_noop(
            "The database %(alias)r uses %(vendor)s; backups support PostgreSQL and SQLite."
        ),
        alias=using,
        vendor=connection.vendor,
    )


def compare_rows(actual: dict[str, int], expected: dict[str, int]) -> list[Message]:
    """Return one line per table whose row count differs from the manifest's."""
    no_table = Message(gettext_noop("no table"))
    differences = []
    for table in sorted(set(actual) | set(expected)):
        if actual.get(table) != expected.get(table):
            differences.append(
                Message(
                    gettext_noop(
                        "%(table)s: %(expected)s in the manifest, %(actual)s in the database"
                    ),
                    table=table,
                    expected=expected.get(table, no_table),
                    actual=actual.get(table, no_table),
                )
            )
    return differences


def migrations_from(rows: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Group rows of django_migrations (app, name) by app, in the order they were applied."""
    applied: dict[str, list[str]] = {}
    for app, name in rows:
        applied.setdefault(app, []).append(name)
    return applied


# Connection settings that libpq takes, with the environment variable that pg_dump and
# pg_restore read for each (PostgreSQL manual, "Environment Variables" of libpq).
LIBPQ_ENVIRONMENT = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslcrl": "PGSSLCRL",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "options": "PGOPTIONS",
    "application_name": "PGAPPNAME",
    "service": "PGSERVICE",
    "passfile": "PGPASSFILE",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}

LIST_TABLES_POSTGRES = """
    SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname = current_schema()
    ORDER BY c.relname
"""


class PostgresDatabase(Database):
    """A PostgreSQL database. Only the tables of the current schema are counted and dropped."""

    vendor = "postgresql"
    dump_filename = "database.dump"

    def describe(self) -> Message:
        host = self.settings_dict.get("HOST") or Message(gettext_noop("the local socket"))
        port = self.settings_dict.get("PORT") or 5432
        return Message(
            gettext_noop("PostgreSQL database %(name)r on %(host)s:%(port)s"),
            name=self.name,
            host=host,
            port=port,
        )

    def connection_parameters(self) -> dict[str, str]:
        """Return the libpq parameters of this database, from its Django settings."""
        settings = self.settings_dict
        parameters = {
            "dbname": settings.get("NAME"),
            "user": settings.get("USER"),
            "password": settings.get("PASSWORD"),
            "host": settings.get("HOST"),
            "port": settings.get("PORT"),
        }
        for key, value in (settings.get("OPTIONS") or {}).items():
            if key in LIBPQ_ENVIRONMENT:
                parameters[key] = value
        return {key: str(value) for key, value in parameters.items() if value not in (None, "")}

    def connect(self, *, autocommit: bool = True):
        import psycopg

        try:
            return psycopg.connect(**self.connection_parameters(), autocommit=autocommit)
        except psycopg.OperationalError as error:
            raise BackupError(
                gettext_noop("Cannot connect to the %(database)s: %(error)s"),
                database=self.describe(),
                error=error,
            ) from error

    @contextmanager
    def reporting_errors(self, action: Message) -> Iterator[None]:
        """Turn a database error (a missing privilege, for one) into a BackupError."""
        import psycopg

        try:
            yield
        except psycopg.Error as error:
            logger.error("%s in %s failed: %s", action, self.describe(), error)
            user = self.settings_dict.get("USER")
            if user:
                raise BackupError(
                    gettext_noop(
                        "%(action)s in the %(database)s failed: %(error)s. Run it as a role "
                        "that may do this (PostgreSQL user %(user)r)."
                    ),
                    action=action,
                    database=self.describe(),
                    error=str(error).strip(),
                    user=user,
                ) from error
            raise BackupError(
                gettext_noop(
                    "%(action)s in the %(database)s failed: %(error)s. Run it as a role "
                    "that may do this (PostgreSQL user of the current login)."
                ),
                action=action,
                database=self.describe(),
                error=str(error).strip(),
            ) from error

    def client_environment(self) -> dict[str, str]:
        """Return the environment for pg_dump and pg_restore, so no password is in argv."""
        environment = dict(os.environ)
        for key, value in self.connection_parameters().items():
            environment[LIBPQ_ENVIRONMENT[key]] = value
        return environment

    def run_client(self, command: list[str]) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(  # noqa: S603 (fixed program names, arguments are ours)
                command,
                env=self.client_environment(),
                capture_output=True,
                text=True,
                check=False,
            )
        except FileNotFoundError as error:
            raise pg_load.missing_program(command[0]) from error

    def dump(self, destination: Path, *, compress_level: int | None = None) -> Snapshot:
        from psycopg import IsolationLevel

        # The counts and migrations in the manifest come from the same snapshot that
        # pg_dump reads, so they match the dump even while the site keeps writing.
        with (
            closing(self.connect(autocommit=False)) as connection,
            self.reporting_errors(Message(gettext_noop("Reading the tables"))),
        ):
            connection.isolation_level = IsolationLevel.REPEATABLE_READ
            connection.read_only = True
            snapshot_id = connection.execute("SELECT pg_export_snapshot()").fetchone()[0]
            server_version = connection.execute("SHOW server_version").fetchone()[0]
            tables = self._count_rows(connection)
            migrations = self._applied_migrations(connection, tables)
            result = self.run_client(
                [
                    "pg_dump",
                    "--format=custom",
                    "--no-password",
                    f"--snapshot={snapshot_id}",
                    f"--file={destination}",
                    *([] if compress_level is None else [f"--compress={compress_level}"]),
                ]
            )
            connection.rollback()
        if result.returncode != 0:
            logger.error("pg_dump of %s failed: %s", self.describe(), result.stderr.strip())
            raise BackupError(
                gettext_noop("pg_dump of the %(database)s failed: %(error)s"),
                database=self.describe(),
                error=result.stderr.strip(),
            )
        return Snapshot(server_version=server_version, migrations=migrations, tables=tables)

    def check_dump(self, path: Path, tables: dict[str, int]) -> None:
        self.dump_schema(path, tables)

    def dump_schema(self, path: Path, tables: dict[str, int]) -> str:
        """Return the schema of the dump's tables, after checking them against `tables`.

        Row counts are not in the dump's table of contents; `restore` checks them before
        it commits.
        """
        result = self.run_client(["pg_restore", "--list", str(path)])
        if result.returncode != 0:
            raise BackupError(
                gettext_noop(
                    "The database part of the archive is not a dump that this pg_restore can "
                    "read: %(error)s. Nothing was changed."
                ),
                error=result.stderr.strip(),
            )
        by_schema = pg_load.tables_by_schema(result.stdout)
        expected = set(tables)
        # The manifest counts the tables of one schema, the one the dump was made from.
        schema = max(by_schema, key=lambda name: len(by_schema[name] & expected), default="")
        found = by_schema.get(schema, set())
        if found != expected:
            problems = [
                Message(gettext_noop("%(table)s: not in the dump"), table=name)
                for name in sorted(expected - found)
            ]
            problems += [
                Message(gettext_noop("%(table)s: not in the manifest"), table=name)
                for name in sorted(found - expected)
            ]
            raise BackupError(
                gettext_noop(
                    "The archive's manifest and its database dump list different tables "
                    "(%(problems)s). The archive was altered; nothing was changed."
                ),
                problems=problems,
            )
        return schema

    def restore(self, path: Path, *, tables: dict[str, int]) -> None:
        schema = self.dump_schema(path, tables)
        with (
            closing(self.connect()) as connection,
            self.reporting_errors(Message(gettext_noop("Reading the tables before the restore"))),
        ):
            drops, extra = pg_load.drop_tables_sql(connection, schema, set(tables))
            check = pg_load.row_count_check_sql(connection, schema, tables)
        if extra:
            logger.info("Restore drops tables that the archive does not have: %s", ", ".join(extra))
        messages = pg_load.load_dump(
            path,
            self.client_environment(),
            preamble=f"SET client_min_messages = warning;\n{drops}\n",
            epilogue=check,
            target=self.describe(),
        )
        for message in messages:
            logger.warning("Restore into %s: %s", self.describe(), message)

    def table_rows(self) -> dict[str, int]:
        counting = Message(gettext_noop("Counting rows"))
        with closing(self.connect()) as connection, self.reporting_errors(counting):
            return self._count_rows(connection)

    @staticmethod
    def _count_rows(connection) -> dict[str, int]:
        from psycopg import sql

        names = [row[0] for row in connection.execute(LIST_TABLES_POSTGRES)]
        query = sql.SQL("SELECT count(*) FROM {}")
        return {
            name: connection.execute(query.format(sql.Identifier(name))).fetchone()[0]
            for name in names
        }

    @staticmethod
    def _applied_migrations(connection, tables: dict[str, int]) -> dict[str, list[str]]:
        if "django_migrations" not in tables:
            return {}
        rows = connection.execute("SELECT app, name FROM django_migrations ORDER BY id")
        return migrations_from(rows)

    @contextmanager
    def temporary_database(self, label: str, work_dir: Path) -> Iterator["PostgresDatabase"]:
        import psycopg
        from psycopg import sql

        # PostgreSQL names are at most 63 bytes; the label keeps parallel runs apart.
        name = f"{self.name[: 63 - len(label) - 8]}_verify_{label}"
        identifier = sql.Identifier(name)
        with closing(self.connect()) as connection:
            try:
                connection.execute(
                    sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(identifier)
                )
            except psycopg.errors.InsufficientPrivilege as error:
                user = self.settings_dict.get("USER")
                role = repr(user) if user else Message(gettext_noop("of the current login"))
                raise BackupError(
                    gettext_noop(
                        "Cannot create the temporary database %(name)s: the PostgreSQL role "
                        "%(role)s lacks the CREATEDB privilege (%(error)s). Grant it "
                        "(ALTER ROLE ... CREATEDB) or run verify_backup as a role that has it."
                    ),
                    name=name,
                    role=role,
                    error=str(error).strip(),
                ) from error
            except psycopg.Error as error:
                raise BackupError(
                    gettext_noop("Cannot create the temporary database %(name)s: %(error)s"),
                    name=name,
                    error=str(error).strip(),
                ) from error
        logger.info("Created temporary database %s", name)
        try:
            yield PostgresDatabase({**self.settings_dict, "NAME": name})
        finally:
            with closing(self.connect()) as connection:
                connection.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(identifier)
                )
            logger.info("Dropped temporary database %s", name)


def quote_sqlite(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SqliteDatabase(Database):
    """A SQLite database file."""

    vendor = "sqlite"
    dump_filename = "database.sqlite3"

    def describe(self) -> Message:
        return Message(gettext_noop("SQLite database %(name)s"), name=self.name)

    @property
    def path(self) -> Path:
        name = self.name
        if not name or name == ":memory:" or "mode=memory" in name or name.startswith("file:"):
            raise BackupError(
                gettext_noop(
                    "The SQLite database %(name)r is not a plain file; backups need a file "
                    "database such as DATABASE_URL=sqlite:////path/to/db.sqlite3."
                ),
                name=name,
            )
        return Path(name)

    def connect(self, path: Path | None = None) -> sqlite3.Connection:
        return sqlite3.connect(path or self.path, timeout=20)

    def dump(self, destination: Path, *, compress_level: int | None = None) -> Snapshot:
        # A SQLite dump is a plain database file, so compress_level does not apply.
        if not self.path.is_file():
            raise BackupError(
                gettext_noop("The %(database)s does not exist; there is nothing to back up."),
                database=self.describe(),
            )
        with closing(self.connect()) as source, closing(self.connect(destination)) as target:
            source.backup(target)
        # Counted from the copy, so the manifest matches the dump exactly.
        with closing(self.connect(destination)) as copy:
            tables = self._count_rows(copy)
            migrations = self._applied_migrations(copy, tables)
        return Snapshot(server_version=sqlite3.sqlite_version, migrations=migrations, tables=tables)

    def check_dump(self, path: Path, tables: dict[str, int]) -> None:
        # as_uri() percent-encodes the path, so a "%" or "?" in a folder name stays literal.
        uri = f"{Path(path).resolve().as_uri()}?mode=ro"
        try:
            with closing(sqlite3.connect(uri, uri=True)) as copy:
                result = [row[0] for row in copy.execute("PRAGMA integrity_check")]
                counts = self._count_rows(copy) if result == ["ok"] else {}
        except sqlite3.DatabaseError as error:
            result = [str(error)]
        if result != ["ok"]:
            raise BackupError(
                gettext_noop(
                    "The database part of the archive is not a sound SQLite database "
                    "(%(problems)s). Nothing was changed."
                ),
                problems="; ".join(result[:5]),
            )
        differences = compare_rows(counts, tables)
        if differences:
            raise BackupError(
                gettext_noop(
                    "The archive's database part does not have the row counts of its manifest "
                    "(%(differences)s). The archive was altered; nothing was changed."
                ),
                differences=differences,
            )

    def restore(self, path: Path, *, tables: dict[str, int]) -> None:
        self.check_dump(path, tables)
        # The backup API replaces every page of the target, so tables that the dump lacks
        # disappear as well, and it does so in one write transaction.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with closing(self.connect(path)) as source, closing(self.connect()) as target:
                source.backup(target)
        except sqlite3.Error as error:
            logger.error("Restore into %s failed: %s", self.describe(), error)
            raise BackupError(
                gettext_noop("Restore into the %(database)s failed: %(error)s"),
                database=self.describe(),
                error=error,
            ) from error

    def table_rows(self) -> dict[str, int]:
        if not self.path.exists():
            return {}
        try:
            with closing(self.connect()) as connection:
                return self._count_rows(connection)
        except sqlite3.Error as error:
            raise BackupError(
                gettext_noop("Cannot count the rows of the %(database)s: %(error)s"),
                database=self.describe(),
                error=error,
            ) from error

    @staticmethod
    def _count_rows(connection: sqlite3.Connection) -> dict[str, int]:
        names = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return {
            name: connection.execute(f"SELECT count(*) FROM {quote_sqlite(name)}").fetchone()[0]  # noqa: S608
            for name in names
        }

    @staticmethod
    def _applied_migrations(connection, tables: dict[str, int]) -> dict[str, list[str]]:
        if "django_migrations" not in tables:
            return {}
        return migrations_from(
            connection.execute("SELECT app, name FROM django_migrations ORDER BY id")
        )

    @contextmanager
    def temporary_database(self, label: str, work_dir: Path) -> Iterator["SqliteDatabase"]:
        path = Path(work_dir) / f"verify-{label}.sqlite3"
        try:
            yield SqliteDatabase({**self.settings_dict, "NAME": str(path)})
        finally:
            path.unlink(missing_ok=True)
