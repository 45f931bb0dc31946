"""Plain SQL over a model's own table, for the few hot paths where the ORM's compiling costs more
than the statement (a status batch on the facilitator, a running job's row on the validator).

Values go through the model's fields (``get_db_prep_save``), so that a UUID, a datetime or a
JSON document is stored exactly as the ORM would store it, on SQLite and PostgreSQL alike; the
rest of the code keeps reading these rows through the ORM.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection, models
from django.db.models.constants import OnConflict

__all__ = ["execute", "execute_many", "fetch", "insert", "insert_many", "marks", "prep", "table"]


def table(model: type[models.Model]) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def marks(count: int) -> str:
    """``%s, %s, …`` for an ``IN (…)`` of ``count`` values."""
    return ", ".join(["%s"] * count)


def prep(model: type[models.Model], field: str, value: Any) -> Any:
    """``value`` as the database stores ``model.field``."""
    return model._meta.get_field(field).get_db_prep_save(value, connection)


def fetch(query: str, params: Sequence[Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def execute(query: str, params: Sequence[Any]) -> int:
    """Run one statement; the number of rows it changed."""
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.rowcount


def execute_many(query: str, rows: Iterable[Sequence[Any]]) -> None:
    rows = list(rows)
    if rows:
        with connection.cursor() as cursor:
            cursor.executemany(query, rows)


def insert(obj: models.Model) -> None:
    """``INSERT`` one new row of ``obj``, every column as its field prepares it (defaults and
    ``auto_now`` included); the primary key must be set already (no ``RETURNING``)."""
    fields = [f for f in obj._meta.concrete_fields if f.attname != "id" or obj.pk is not None]
    values = [f.get_db_prep_save(f.pre_save(obj, add=True), connection) for f in fields]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    execute(f"INSERT INTO {table(type(obj))} ({columns}) VALUES ({marks(len(fields))})", values)
    obj._state.adding, obj._state.db = False, connection.alias  # as after the ORM's save(): stored


def insert_many(objs: Sequence[models.Model], *, ignore_conflicts: bool = False) -> None:
    """``INSERT`` new rows of one model in one statement run for each (``bulk_create`` without
    its compiling); an auto-incremented primary key is left to the database and not read back.
    ``ignore_conflicts``: a row that breaks a unique constraint is skipped, as with ``bulk_create``."""
    if not objs:
        return
    model = type(objs[0])
    fields = [f for f in model._meta.concrete_fields if f is not model._meta.auto_field]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    conflict = OnConflict.IGNORE if ignore_conflicts else None
    suffix = connection.ops.on_conflict_suffix_sql(fields, conflict, None, None) if conflict else ""
    execute_many(
        f"{connection.ops.insert_statement(on_conflict=conflict)} {table(model)} ({columns})"
        f" VALUES ({marks(len(fields))}) {suffix}".rstrip(),
        [[f.get_db_prep_save(f.pre_save(obj, add=True), connection) for f in fields] for obj in objs],
    )
