"""Hot-path SQL helpers, each replacing an ORM call whose compilation showed up in the profiles.

Django compiles a queryset's SQL on every call; on the booking request that compilation cost
more CPU than the database work. The statements here are built once per process from the
models' metadata, so they follow schema changes like the ORM does.

Hot statements run on a server-side-binding cursor and are prepared: PostgreSQL parses and plans
each once per connection, and parameters travel as values instead of being quoted into the SQL
in Python (``DATABASE_PREPARED_STATEMENTS``). Behind PgBouncer, use version 1.21+ with
``max_prepared_statements`` set, or turn that setting off.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any, TypeVar

import psycopg
from django.db import connection, models

M = TypeVar("M", bound=models.Model)


@contextmanager
def server_side_cursor() -> Iterator[psycopg.Cursor]:
    """A psycopg cursor with server-side parameter binding on Django's connection (same
    transaction). Database errors come out as Django's (``django.db.IntegrityError``...), as from
    ``connection.cursor()``, and like it the connection is health-checked first (``CONN_HEALTH_CHECKS``).
    Pass ``prepare=True`` to ``execute`` for a statement run per request."""
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield cursor


def select_columns(model: type[models.Model], alias: str) -> tuple[str, list[str]]:
    """``alias."column", ...`` for every concrete field of ``model``, and the fields' attnames in the
    same order: what ``model.from_db`` takes to build instances from the selected values."""
    fields = model._meta.concrete_fields
    columns = ", ".join(f"{alias}.{connection.ops.quote_name(str(field.column))}" for field in fields)
    return columns, [field.attname for field in fields]


@cache
def _insert_statement(model: type[models.Model]) -> tuple[str, list[models.Field]]:
    if model._meta.auto_field is None:
        raise TypeError(f"model_insert() needs a model with an auto primary key, not {model.__name__}")
    fields = [field for field in model._meta.local_concrete_fields if field is not model._meta.auto_field]
    columns = ", ".join(connection.ops.quote_name(str(field.column)) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    table = connection.ops.quote_name(model._meta.db_table)
    pk = connection.ops.quote_name(str(model._meta.pk.column))
    sql = f"INSERT INTO {table} ({columns}) VALUES ({placeholders}) RETURNING {pk}"  # noqa: S608 - names come from model meta, values are parameters
    return sql, fields


def one_row(row: tuple[Any, ...] | None) -> tuple[Any, ...]:
    """The row a statement must have returned (typed as such)."""
    if row is None:  # a RETURNING statement that inserted its row always returns it
        raise RuntimeError("the statement returned no row")
    return row


def model_insert(instance: M) -> M:
    """Insert a new row like ``instance.save()`` (field defaults, ``auto_now_add``, database-side
    value preparation), then set its auto primary key. Sends no ``pre_save``/``post_save`` signals:
    use it only for models nothing listens to, without multi-table inheritance."""
    sql, fields = _insert_statement(type(instance))
    values = [field.get_db_prep_save(field.pre_save(instance, True), connection) for field in fields]
    with server_side_cursor() as cursor:
        (instance.pk,) = one_row(cursor.execute(sql, values, prepare=True).fetchone())
    instance._state.adding = False
    instance._state.db = connection.alias
    return instance
