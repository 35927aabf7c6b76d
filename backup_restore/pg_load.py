"""Load a pg_dump archive into PostgreSQL as one transaction that is checked before it commits.

`pg_restore --file=-` turns the dump into SQL, and `psql --single-transaction` runs it,
after a preamble (dropping the tables the dump lacks) and before an epilogue (comparing
every table's row count with the manifest). All of it commits together or not at all:

- an SQL error, a failed check or a lost connection rolls back everything, the dropped
  tables included, because psql stops at the first error (ON_ERROR_STOP);
- when pg_restore fails, psql is killed before it reads the end of its input, and psql
  sends COMMIT only after the end of its input, so nothing commits;
- when this process is killed, psql dies with it or loses its input the same way.
"""

import contextlib
import json
import logging
import re
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path

from django.utils.translation import gettext_noop

from cpr_portal.messages import Message

from .errors import BackupError

logger = logging.getLogger(__name__)

CHUNK_SIZE = 1024 * 1024
# psql's exit status when a statement failed and ON_ERROR_STOP stopped the script.
PSQL_SCRIPT_ERROR = 3
# A TABLE entry of `pg_restore --list`: "<id>; <table oid> <oid> TABLE <schema> <name> <owner>".
TABLE_ENTRY = re.compile(r"^\d+;\s+\d+\s+\d+\s+TABLE\s+(\S+)\s+(\S+)(?:\s|$)")

ROW_COUNT_CHECK = """
DO {tag}
DECLARE
    expected jsonb := {expected}::jsonb;
    schema_name text := {schema};
    found text[];
    problems text[] := ARRAY[]::text[];
    table_name text;
    actual bigint;
BEGIN
    SELECT coalesce(array_agg(c.relname::text), ARRAY[]::text[]) INTO found
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname = schema_name;
    FOR table_name IN
        SELECT name FROM (
            SELECT unnest(found) AS name UNION SELECT jsonb_object_keys(expected)
        ) AS every_table ORDER BY name
    LOOP
        actual := NULL;
        IF table_name = ANY(found) THEN
            EXECUTE format('SELECT count(*) FROM %I.%I', schema_name, table_name) INTO actual;
        END IF;
        IF actual IS DISTINCT FROM (expected ->> table_name)::bigint THEN
            problems := problems || format(
                '%s: %s in the manifest, %s in the database',
                table_name,
                coalesce(expected ->> table_name, 'no table'),
                coalesce(actual::text, 'no table'));
        END IF;
    END LOOP;
    IF cardinality(problems) > 0 THEN
        RAISE EXCEPTION 'The restored tables do not match the manifest: %',
            array_to_string(problems, '; ');
    END IF;
END
{tag};
"""


def tables_by_schema(list_output: str) -> dict[str, set[str]]:
    """Return the tables of a `pg_restore --list` output, by schema."""
    tables: dict[str, set[str]] = {}
    for line in list_output.splitlines():
        if match := TABLE_ENTRY.match(line):
            tables.setdefault(match.group(1), set()).add(match.group(2))
    return tables


def drop_tables_sql(connection, schema: str, keep: set[str]) -> tuple[str, list[str]]:
    """Return SQL that drops the tables of `schema` not in `keep`, and their names."""
    from psycopg import sql

    rows = connection.execute(
        """
        SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname = %s ORDER BY c.relname
        """,
        [schema],
    )
    extra = [row[0] for row in rows if row[0] not in keep]
    statements = [
        sql.SQL("DROP TABLE IF EXISTS {} CASCADE;").format(sql.Identifier(schema, table))
        for table in extra
    ]
    return "\n".join(statement.as_string(connection) for statement in statements), extra


def row_count_check_sql(connection, schema: str, tables: dict[str, int]) -> str:
    """Return a DO block that raises unless `schema` has exactly `tables` with these counts."""
    from psycopg import sql

    # The body is dollar-quoted with a random tag, so no table name can end it early.
    tag = f"$check_{secrets.token_hex(8)}$"
    return ROW_COUNT_CHECK.format(
        tag=tag,
        expected=sql.Literal(json.dumps(tables)).as_string(connection),
        schema=sql.Literal(schema).as_string(connection),
    )


def load_dump(
    dump: Path, environment: dict[str, str], *, preamble: str, epilogue: str, target: Message
) -> list[str]:
    """Run preamble, the dump's SQL and epilogue in one transaction; return psql's notices.

    `environment` gives pg_restore and psql the connection (PGHOST, PGDATABASE...), and
    `target` names the database in messages. Raises BackupError when anything failed.
    """
    with (
        tempfile.TemporaryFile() as dump_errors,
        tempfile.TemporaryFile() as load_errors,
    ):
        try:
            dumper = subprocess.Popen(  # noqa: S603 (fixed program, arguments are ours)
                [  # noqa: S607 (found on PATH, like pg_dump)
                    "pg_restore",
                    # No ALTER OWNER, GRANT or REVOKE: a role that does not own the schema
                    # can restore.
                    "--no-owner",
                    "--no-privileges",
                    "--clean",
                    "--if-exists",
                    "--file=-",
                    str(dump),
                ],
                stdout=subprocess.PIPE,
                stderr=dump_errors,
                env=environment,
            )
        except FileNotFoundError as error:
            raise missing_program("pg_restore") from error
        try:
            loader = subprocess.Popen(  # noqa: S603
                [  # noqa: S607
                    "psql",
                    "--no-psqlrc",
                    "--quiet",
                    "--no-password",
                    "--single-transaction",
                    "--set=ON_ERROR_STOP=1",
                    "--file=-",
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=load_errors,
                env=environment,
            )
        except FileNotFoundError as error:
            dumper.kill()
            dumper.wait()
            raise missing_program("psql") from error
        try:
            dump_status, load_status = _pump(dumper, loader, preamble, epilogue)
        finally:
            # Processes still running here mean an exception (a signal, for one) stopped
            # the pump: psql must not go on to read the end of its input, so it is killed.
            for process in (dumper, loader):
                if process.poll() is None:
                    process.kill()
                    process.wait()
            for stream in (dumper.stdout, loader.stdin):
                with contextlib.suppress(OSError):
                    stream.close()
        dump_messages = _read_lines(dump_errors)
        load_messages = _read_lines(load_errors)

    if dump_status != 0:
        details = "\n".join(dump_messages[:20]) or exit_status(dump_status)
        logger.error("pg_restore of %s failed: %s", dump, " | ".join(dump_messages))
        raise BackupError(
            gettext_noop(
                "pg_restore could not read the dump, so the restore into the %(database)s was "
                "stopped before it committed and nothing was changed:\n%(details)s"
            ),
            database=target,
            details=details,
        )
    if load_status != 0:
        details = "\n".join(load_messages[:20]) or exit_status(load_status)
        logger.error("Restore into %s failed: %s", target, " | ".join(load_messages))
        if load_status == PSQL_SCRIPT_ERROR:
            raise BackupError(
                gettext_noop(
                    "The restore into the %(database)s failed and was rolled back:\n%(details)s"
                ),
                database=target,
                details=details,
            )
        raise BackupError(
            gettext_noop(
                "psql failed with exit status %(status)d while restoring into the "
                "%(database)s:\n%(details)s\nThe restore runs as one transaction, so it was "
                "applied completely or not at all; when the connection was lost during the "
                "final COMMIT, check which."
            ),
            status=load_status,
            database=target,
            details=details,
        )
    return load_messages


def _pump(dumper, loader, preamble: str, epilogue: str) -> tuple[int, int]:
    """Feed preamble, pg_restore's output and epilogue to psql.

    Returns the exit statuses of pg_restore and psql, with 0 for the one stopped here
    because the other failed.
    """
    try:
        loader.stdin.write(preamble.encode())
        shutil.copyfileobj(dumper.stdout, loader.stdin, CHUNK_SIZE)
    except BrokenPipeError:
        # psql stopped at an error, and its exit status gives the reason; pg_restore can stop.
        dumper.kill()
        dumper.wait()
        return 0, loader.wait()
    dump_status = dumper.wait()
    if dump_status != 0:
        # psql has not read the end of its input, so it has not committed, and never will.
        loader.kill()
        loader.wait()
        return dump_status, 0
    try:
        loader.stdin.write(epilogue.encode())
        # The end of its input is what makes psql commit.
        loader.stdin.close()
    except BrokenPipeError:
        pass
    return 0, loader.wait()


def _read_lines(stream) -> list[str]:
    stream.seek(0)
    text = stream.read().decode(errors="replace")
    return [line for line in text.splitlines() if line.strip()]


def exit_status(status: int) -> Message:
    return Message(gettext_noop("exit status %(status)d"), status=status)


def missing_program(program: str) -> BackupError:
    return BackupError(
        gettext_noop(
            "%(program)s was not found. Install the PostgreSQL client programs "
            "(Debian package postgresql-client) of the server's major version or newer."
        ),
        program=program,
    )
