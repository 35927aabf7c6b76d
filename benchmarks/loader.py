"""Bulk loading of generated rows into PostgreSQL with COPY, and clearing it again.

The seed builds every row in memory with explicit primary keys, so rows can point at
each other before any of them is written. `Table` hands out those keys, starting after
the highest key already in the table, and `write_tables` sends each table with one
`COPY ... FROM STDIN` (psycopg 3) in foreign-key order, then moves every sequence past
the keys used.
"""

import json

from django.db import connection, models
from django.db.models import Max


class Table:
    """Rows of one model, built as tuples in the order of `fields`, with their own ids."""

    def __init__(self, model: type[models.Model], fields: list[str]):
        self.model = model
        self.fields = ["id", *fields]
        self.columns = [model._meta.get_field(name).column for name in self.fields]
        self.rows: list[tuple] = []
        self._next_id = (model.objects.aggregate(top=Max("pk"))["top"] or 0) + 1
        self._index = {name: position for position, name in enumerate(self.fields)}

    def add(self, **values) -> int:
        """Add a row; missing fields are an error, so every column is set on purpose."""
        row_id = self._next_id
        self._next_id += 1
        values["id"] = row_id
        missing = set(self.fields) - set(values)
        extra = set(values) - set(self.fields)
        if missing or extra:
            raise ValueError(
                f"{self.model.__name__}: missing {sorted(missing)}, unknown {sorted(extra)}"
            )
        self.rows.append(tuple(_db_value(values[name]) for name in self.fields))
        return row_id

    def set(self, row_id: int, **values) -> None:
        """Change fields of a row added earlier (rows are kept in id order)."""
        position = row_id - self.rows[0][0]
        row = list(self.rows[position])
        for name, value in values.items():
            row[self._index[name]] = _db_value(value)
        self.rows[position] = tuple(row)

    def get(self, row_id: int, name: str):
        return self.rows[row_id - self.rows[0][0]][self._index[name]]

    def __len__(self) -> int:
        return len(self.rows)


def _db_value(value):
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def write_tables(tables: list[Table], progress=None) -> None:
    """COPY each table's rows in the given order, then reset the sequences of all of them."""
    connection.ensure_connection()
    with connection.cursor() as cursor:
        for table in tables:
            if not table.rows:
                continue
            quoted = ", ".join(connection.ops.quote_name(column) for column in table.columns)
            db_table = connection.ops.quote_name(table.model._meta.db_table)
            sql = f"COPY {db_table} ({quoted}) FROM STDIN"
            with cursor.copy(sql) as copy:
                for row in table.rows:
                    copy.write_row(row)
            if progress:
                progress(table)
        for table in tables:
            reset_sequence(cursor, table.model)


def reset_sequence(cursor, model: type[models.Model]) -> None:
    db_table = model._meta.db_table
    pk_column = model._meta.pk.column
    cursor.execute(
        f"SELECT setval(pg_get_serial_sequence(%s, %s), GREATEST(MAX({pk_column}), 1), "  # noqa: S608
        f"MAX({pk_column}) IS NOT NULL) FROM {connection.ops.quote_name(db_table)}",
        [db_table, pk_column],
    )


def truncate(models_to_clear: list[type[models.Model]]) -> None:
    """Empty the tables of `models_to_clear` (and rows that point at them) in one statement."""
    names = ", ".join(connection.ops.quote_name(model._meta.db_table) for model in models_to_clear)
    with connection.cursor() as cursor:
        # TRUNCATE refuses tables with deferred foreign-key checks still pending in this
        # transaction (rows written earlier in it), so those checks run first.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
