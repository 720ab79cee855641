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

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any, NamedTuple, TypeVar

import psycopg
from django.db import InterfaceError, OperationalError, connection, models

logger = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=models.Model)

# What a lost or refused database connection raises (a restarted server, a terminated backend).
CONNECTION_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)


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


def instance_from_row(model: type[M], attnames: list[str], row: tuple[Any, ...]) -> M:
    """The instance a raw ``SELECT``/``RETURNING`` of ``select_columns`` returned, each value
    through its field's converters as the ORM does (a ``JSONField`` arrives as text)."""
    values = list(row)
    for position, (field, converters) in enumerate(_converters(model)):
        for convert in converters:
            values[position] = convert(values[position], field, connection)
    return model.from_db(connection.alias, attnames, values)


@cache
def _converters(model: type[models.Model]) -> list[tuple[models.Field, list[Callable[..., Any]]]]:
    return [(field, field.get_db_converters(connection)) for field in model._meta.concrete_fields]


@cache
def _insert_statement(model: type[models.Model]) -> str:
    fields = model._meta.local_concrete_fields
    columns = ", ".join(connection.ops.quote_name(str(field.column)) for field in fields)
    placeholders = ", ".join(f"%({_ROW_PARAM}{field.attname})s" for field in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    return f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"  # noqa: S608 - names come from model meta, values are parameters


_ROW_PARAM = "row_"  # prefix of a RowInsert's parameter names, so another statement can carry it


class RowInsert(NamedTuple):
    """The INSERT of one new model instance, its values bound (named parameters ``row_*``).

    Run it with ``row_insert``, or let another statement carry it in the same round trip
    (``messaging.services.outbox_event_record(along_with=...)``). Its SQL is the same for every
    instance of a model, so it is prepared once per connection like the other hot statements.
    """

    instance: models.Model
    sql: str
    params: dict[str, Any]

    def mark_inserted(self) -> None:
        """The row is in the database (as ``save()`` leaves an instance)."""
        self.instance._state.adding = False
        self.instance._state.db = connection.alias


def one_row(row: tuple[Any, ...] | None) -> tuple[Any, ...]:
    """The row a statement must have returned (typed as such)."""
    if row is None:  # a RETURNING statement that inserted its row always returns it
        raise RuntimeError("the statement returned no row")
    return row


def model_insert_statement(instance: models.Model) -> RowInsert:
    """The INSERT of ``instance`` as ``save()`` would write it: field defaults, ``auto_now_add``
    and database-side value preparation run now (so ``created_at`` is set on the instance before
    the row is written). Its primary key must be assigned already (reserved with ``nextval`` by an
    earlier query): whatever carries the row may need it, as the outbox event about it does."""
    if instance.pk is None:
        raise ValueError(f"assign the {type(instance).__name__}'s primary key first (reserve it with nextval)")
    params = {
        f"{_ROW_PARAM}{field.attname}": field.get_db_prep_save(field.pre_save(instance, True), connection)
        for field in instance._meta.local_concrete_fields
    }
    return RowInsert(instance, _insert_statement(type(instance)), params)


def row_insert(row: RowInsert) -> None:
    """Execute ``row`` on its own and mark its instance inserted. Like ``save()`` without the
    ``pre_save``/``post_save`` signals: use it only for models nothing listens to, without
    multi-table inheritance."""
    with server_side_cursor() as cursor:
        cursor.execute(row.sql, row.params, prepare=True)
    row.mark_inserted()


def retry_on_connection_loss(write: Callable[[], T], *, what: str, attempts: int = 3, pause: float = 0.5) -> T:
    """Run an idempotent autocommit write; when the database connection is lost under it, close
    the connection and run it again on a fresh one (up to ``attempts`` times, pausing ``pause``,
    then twice that...), then let the error out.

    For the short conditional UPDATEs that record what a task did outside any transaction (a sent
    notification): without it, a backend terminated between the external call and the record
    leaves the row claimed until its lease expires. Inside a transaction there is nothing to
    retry: the transaction is gone, so the error goes to the caller at once.
    """
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except CONNECTION_ERRORS as exc:
            if connection.in_atomic_block or attempt == attempts:
                raise
            logger.warning("database connection lost while %s (%s); retrying on a new connection", what, exc)
            connection.close()
            time.sleep(pause * attempt)
    raise AssertionError("unreachable")  # the loop returns or raises
