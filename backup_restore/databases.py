"""Dump and restore of the portal's database, one class per database engine.

PostgreSQL uses `pg_dump --format=custom` and `pg_restore` from the PostgreSQL client
programs, which must be of the server's major version or newer. SQLite uses the
sqlite3 module's online backup API in both directions, which copies a consistent
snapshot while other connections keep working.
"""

import logging
import os
import sqlite3
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.db import connections

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
    def describe(self) -> str:
        """Return a phrase naming the database for messages."""

    @abstractmethod
    def dump(self, destination: Path) -> Snapshot:
        """Write a dump of the whole database to `destination`."""

    @abstractmethod
    def check_dump(self, path: Path) -> None:
        """Raise BackupError unless `path` is a dump that `restore` can read."""

    @abstractmethod
    def restore(self, path: Path, *, tables: Iterable[str]) -> None:
        """Replace the database's tables and rows with those of the dump at `path`.

        `tables` are the tables in the dump. Any other table is dropped, so that `migrate`
        can recreate the tables of migrations that the dump predates.
        """

    @abstractmethod
    def table_rows(self) -> dict[str, int]:
        """Return the row count of every table, by table name."""

    @abstractmethod
    def column_values(self, table: str, column: str) -> set:
        """Return the distinct values of one column."""

    @abstractmethod
    @contextmanager
    def temporary_database(self, label: str) -> Iterator["Database"]:
        """Create an empty database of the same engine, yield it, and always remove it."""


def database_for(using: str = "default") -> Database:
    """Return the Database for a Django database alias, or raise BackupError for other engines."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        return PostgresDatabase(connection.settings_dict)
    if connection.vendor == "sqlite":
        return SqliteDatabase(connection.settings_dict)
    raise BackupError(
        f"The database {using!r} uses {connection.vendor}; backups support PostgreSQL and SQLite."
    )


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

    def describe(self) -> str:
        host = self.settings_dict.get("HOST") or "the local socket"
        port = self.settings_dict.get("PORT") or 5432
        return f"PostgreSQL database {self.name!r} on {host}:{port}"

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
            raise BackupError(f"Cannot connect to the {self.describe()}: {error}") from error

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
            raise BackupError(
                f"{command[0]} was not found. Install the PostgreSQL client programs "
                "(Debian package postgresql-client) of the server's major version or newer."
            ) from error

    def dump(self, destination: Path) -> Snapshot:
        from psycopg import IsolationLevel

        # The counts and migrations in the manifest come from the same snapshot that
        # pg_dump reads, so they match the dump even while the site keeps writing.
        with closing(self.connect(autocommit=False)) as connection:
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
                ]
            )
            connection.rollback()
        if result.returncode != 0:
            logger.error("pg_dump of %s failed: %s", self.describe(), result.stderr.strip())
            raise BackupError(f"pg_dump of the {self.describe()} failed: {result.stderr.strip()}")
        return Snapshot(server_version=server_version, migrations=migrations, tables=tables)

    def check_dump(self, path: Path) -> None:
        result = self.run_client(["pg_restore", "--list", str(path)])
        if result.returncode != 0:
            raise BackupError(
                "The database part of the archive is not a dump that this pg_restore can "
                f"read: {result.stderr.strip()}. Nothing was changed."
            )

    def restore(self, path: Path, *, tables: Iterable[str]) -> None:
        self._drop_tables_not_in(set(tables))
        # --no-owner and --no-privileges skip the ALTER OWNER, GRANT and REVOKE commands,
        # so a role that does not own the schema can restore. --single-transaction implies
        # --exit-on-error: any other error rolls the whole restore back and fails it.
        result = self.run_client(
            [
                "pg_restore",
                "--no-owner",
                "--no-privileges",
                "--clean",
                "--if-exists",
                "--single-transaction",
                "--exit-on-error",
                "--no-password",
                f"--dbname={self.name}",
                str(path),
            ]
        )
        messages = [line for line in result.stderr.splitlines() if line.strip()]
        if result.returncode != 0:
            logger.error("pg_restore into %s failed: %s", self.describe(), " | ".join(messages))
            details = "\n".join(messages[:20]) or f"exit status {result.returncode}"
            raise BackupError(
                f"pg_restore into the {self.describe()} failed and was rolled back:\n{details}"
            )
        for message in messages:
            logger.warning("pg_restore into %s: %s", self.describe(), message)

    def _drop_tables_not_in(self, keep: set[str]) -> None:
        from psycopg import sql

        with closing(self.connect(autocommit=False)) as connection:
            existing = [row[0] for row in connection.execute(LIST_TABLES_POSTGRES)]
            extra = [table for table in existing if table not in keep]
            for table in extra:
                connection.execute(
                    sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(table))
                )
            connection.commit()
        if extra:
            logger.info("Dropped tables that the archive does not have: %s", ", ".join(extra))

    def table_rows(self) -> dict[str, int]:
        with closing(self.connect()) as connection:
            return self._count_rows(connection)

    def column_values(self, table: str, column: str) -> set:
        from psycopg import sql

        query = sql.SQL("SELECT DISTINCT {} FROM {}").format(
            sql.Identifier(column), sql.Identifier(table)
        )
        with closing(self.connect()) as connection:
            return {row[0] for row in connection.execute(query)}

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
    def temporary_database(self, label: str) -> Iterator["PostgresDatabase"]:
        from psycopg import sql

        # PostgreSQL names are at most 63 bytes; the label keeps parallel runs apart.
        name = f"{self.name[: 63 - len(label) - 8]}_verify_{label}"
        identifier = sql.Identifier(name)
        with closing(self.connect()) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(identifier))
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

    def describe(self) -> str:
        return f"SQLite database {self.name}"

    @property
    def path(self) -> Path:
        name = self.name
        if not name or name == ":memory:" or "mode=memory" in name or name.startswith("file:"):
            raise BackupError(
                f"The SQLite database {name!r} is not a plain file; backups need a file "
                "database such as DATABASE_URL=sqlite:////path/to/db.sqlite3."
            )
        return Path(name)

    def connect(self, path: Path | None = None) -> sqlite3.Connection:
        return sqlite3.connect(path or self.path, timeout=20)

    def dump(self, destination: Path) -> Snapshot:
        if not self.path.is_file():
            raise BackupError(f"The {self.describe()} does not exist; there is nothing to back up.")
        with closing(self.connect()) as source, closing(self.connect(destination)) as target:
            source.backup(target)
        # Counted from the copy, so the manifest matches the dump exactly.
        with closing(self.connect(destination)) as copy:
            tables = self._count_rows(copy)
            migrations = self._applied_migrations(copy, tables)
        return Snapshot(server_version=sqlite3.sqlite_version, migrations=migrations, tables=tables)

    def check_dump(self, path: Path) -> None:
        try:
            with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as copy:
                result = [row[0] for row in copy.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as error:
            result = [str(error)]
        if result != ["ok"]:
            raise BackupError(
                "The database part of the archive is not a sound SQLite database "
                f"({'; '.join(result[:5])}). Nothing was changed."
            )

    def restore(self, path: Path, *, tables: Iterable[str]) -> None:
        # The backup API replaces every page of the target, so tables that the dump lacks
        # disappear as well, and it does so in one write transaction.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with closing(self.connect(path)) as source, closing(self.connect()) as target:
                source.backup(target)
        except sqlite3.Error as error:
            logger.error("Restore into %s failed: %s", self.describe(), error)
            raise BackupError(f"Restore into the {self.describe()} failed: {error}") from error

    def table_rows(self) -> dict[str, int]:
        if not self.path.exists():
            return {}
        with closing(self.connect()) as connection:
            return self._count_rows(connection)

    def column_values(self, table: str, column: str) -> set:
        query = f"SELECT DISTINCT {quote_sqlite(column)} FROM {quote_sqlite(table)}"  # noqa: S608
        with closing(self.connect()) as connection:
            return {row[0] for row in connection.execute(query)}

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
    def temporary_database(self, label: str) -> Iterator["SqliteDatabase"]:
        with tempfile.TemporaryDirectory(prefix=f"cpr-verify-{label}-") as directory:
            yield SqliteDatabase(
                {**self.settings_dict, "NAME": str(Path(directory) / "verify.sqlite3")}
            )
