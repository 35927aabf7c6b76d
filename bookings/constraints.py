"""An exclusion constraint that PostgreSQL enforces and other databases leave out.

Django's ExclusionConstraint writes PostgreSQL-only SQL (GiST, range operators), so on
SQLite the same migration would fail. `PostgresOnlyExclusionConstraint` returns no SQL
and skips validation on other databases, where the service's check under a row lock
is the only guard (see `bookings.services.book_room`).
"""

from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import BigIntegerRangeField, DateTimeRangeField
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Func


class TsTzRange(Func):
    """PostgreSQL's tstzrange(start, end, bounds)."""

    function = "TSTZRANGE"
    output_field = DateTimeRangeField()


class Int8Range(Func):
    """PostgreSQL's int8range(lower, upper, bounds)."""

    function = "INT8RANGE"
    output_field = BigIntegerRangeField()


def _is_postgres(connection) -> bool:
    return connection.vendor == "postgresql"


class PostgresOnlyExclusionConstraint(ExclusionConstraint):
    """An ExclusionConstraint that exists only on PostgreSQL."""

    def constraint_sql(self, model, schema_editor):
        if not _is_postgres(schema_editor.connection):
            return None
        return super().constraint_sql(model, schema_editor)

    def create_sql(self, model, schema_editor):
        if not _is_postgres(schema_editor.connection):
            return None
        return super().create_sql(model, schema_editor)

    def remove_sql(self, model, schema_editor):
        if not _is_postgres(schema_editor.connection):
            return None
        return super().remove_sql(model, schema_editor)

    def validate(self, model, instance, exclude=None, using=DEFAULT_DB_ALIAS):
        if not _is_postgres(connections[using]):
            return
        super().validate(model, instance, exclude=exclude, using=using)
