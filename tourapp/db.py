"""The kernel of the hand-written SQL every app keeps in its ``queries.py``: the cursor it runs on,
and builders that derive statements from the models' metadata (so they follow schema changes as
the ORM does); plus the connection-loss retry for autocommit writes.

Hot statements run on ``prepared_cursor()``: parameters are bound server-side and a statement run
per request is prepared, so PostgreSQL parses and plans it once per connection
(``DATABASE_PREPARED_STATEMENTS``). Behind PgBouncer, use version 1.21+ with
``max_prepared_statements`` set, or turn that setting off. Those statements stay visible as the
ORM's are: ``connection.queries``, ``CaptureQueriesContext`` and ``connection.execute_wrappers``.

A hand-written INSERT bypasses ``save()`` and the model signals: only models with neither use it
(``bookings/tests/test_fast_path_guard.py`` fails otherwise).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache, partial
from typing import Any, TypeVar

import psycopg
from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connection, connections, models
from django.db.backends.utils import CursorWrapper

logger = logging.getLogger(__name__)
_sql_logger = logging.getLogger("django.db.backends")  # where Django logs the ORM's statements

T = TypeVar("T")
M = TypeVar("M", bound=models.Model)

# What a lost or refused database connection raises (a restarted server, a terminated backend).
CONNECTION_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)


class PreparedCursor(CursorWrapper):
    """Django's cursor wrapper around a psycopg cursor with server-side parameter binding, whose
    ``execute`` also takes psycopg's ``prepare``. Statements go through ``connection.execute_wrappers``
    (APM hooks) and, with ``execute`` returning the cursor itself, fetches raise Django's errors."""

    def execute(self, sql: Any, params: Any = None, *, prepare: bool | None = None) -> PreparedCursor:
        self._execute_with_wrappers(sql, params, many=False, executor=partial(self._execute_prepared, prepare=prepare))
        return self

    def _execute_prepared(self, sql: Any, params: Any, *ignored_wrapper_args: Any, prepare: bool | None) -> Any:
        self.db.validate_no_broken_transaction()
        with self.db.wrap_database_errors:
            return self.cursor.execute(sql, params, prepare=prepare)

    # Direct, not through ``CursorWrapper.__getattr__``: ``prepared_cursor`` already turns the
    # errors of its whole block into Django's, and these run on every hot statement.
    def fetchone(self) -> Any:
        return self.cursor.fetchone()

    def fetchall(self) -> list[Any]:
        return self.cursor.fetchall()


class _PreparedDebugCursor(PreparedCursor):
    """A ``PreparedCursor`` that logs each statement to ``connection.queries_log`` (so to
    ``connection.queries`` and ``CaptureQueriesContext``) and the ``django.db.backends`` logger,
    with its parameters interpolated, as Django's ``CursorDebugWrapper`` does."""

    def execute(self, sql: Any, params: Any = None, *, prepare: bool | None = None) -> PreparedCursor:
        start = time.monotonic()
        try:
            return super().execute(sql, params, prepare=prepare)
        finally:
            duration = time.monotonic() - start
            statement = _interpolated(self.db, sql, params)
            self.db.queries_log.append({"sql": statement, "time": f"{duration:.3f}"})
            _sql_logger.debug(
                "(%.3f) %s; args=%s; alias=%s",
                duration,
                statement,
                params,
                self.db.alias,
                extra={"duration": duration, "sql": statement, "params": params, "alias": self.db.alias},
            )


def _interpolated(db: Any, sql: Any, params: Any) -> str:
    try:
        return str(db.ops.compose_sql(sql, params))  # the PostgreSQL backend's
    except Exception:  # broad on purpose: a statement the log cannot render is logged as written
        return str(sql)


@contextmanager
def prepared_cursor() -> Iterator[PreparedCursor]:
    """A cursor for the hand-written hot statements, on Django's connection (same transaction):
    parameters are bound server-side, and ``execute(sql, params, prepare=True)`` prepares a
    statement run per request. Like ``connection.cursor()`` it health-checks the connection first
    (``CONN_HEALTH_CHECKS``), raises Django's database errors (``django.db.IntegrityError``...), runs
    ``connection.execute_wrappers`` and, when Django logs queries (``DEBUG``, ``CaptureQueriesContext``),
    logs its statements to ``connection.queries``. (Not Django's "server-side cursor", a named
    cursor that streams results: this one fetches as usual.)"""
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself: each access through the proxy costs a lookup
    db.close_if_health_check_failed()
    db.ensure_connection()
    db.validate_thread_sharing()
    wrapper = _PreparedDebugCursor if db.queries_logged else PreparedCursor
    with db.wrap_database_errors, psycopg.Cursor(db.connection) as cursor:
        yield wrapper(cursor, db)


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
def model_insert_sql(model: type[models.Model], *, param_prefix: str) -> str:
    """``INSERT INTO <table> (<columns>) VALUES (...)`` of one ``model`` row, every value a named
    parameter ``<param_prefix><attname>`` (``model_insert_params``); a prefix of its own lets a
    statement carry it next to other parameters. Only for models without multi-table inheritance."""
    fields = model._meta.local_concrete_fields
    columns = ", ".join(connection.ops.quote_name(str(field.column)) for field in fields)
    placeholders = ", ".join(f"%({param_prefix}{field.attname})s" for field in fields)
    table = connection.ops.quote_name(model._meta.db_table)
    return f"INSERT INTO {table} ({columns}) VALUES ({placeholders})"  # noqa: S608 - names come from model meta, values are parameters


def model_insert_params(instance: models.Model, *, param_prefix: str) -> dict[str, Any]:
    """The values of ``model_insert_sql`` for ``instance``, as ``save()`` would write them: field
    defaults, ``auto_now_add`` and database-side value preparation run now (so ``created_at`` is set
    on the instance before the row is written). Its primary key must be assigned already (reserved
    with ``nextval`` by an earlier query): whatever is written with the row may need it."""
    if instance.pk is None:
        raise ValueError(f"assign the {type(instance).__name__}'s primary key first (reserve it with nextval)")
    return {
        f"{param_prefix}{field.attname}": field.get_db_prep_save(field.pre_save(instance, True), connection)
        for field in instance._meta.local_concrete_fields
    }


def mark_in_database(instance: models.Model) -> None:
    """Mark ``instance`` as in the database, as ``save()`` or a query leaves it, after hand-written SQL
    wrote or read its row."""
    instance._state.adding = False
    instance._state.db = connection.alias


def one_row(row: tuple[Any, ...] | None) -> tuple[Any, ...]:
    """The row a statement must have returned (typed as such)."""
    if row is None:  # a RETURNING statement that inserted its row always returns it
        raise RuntimeError("the statement returned no row")
    return row


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
