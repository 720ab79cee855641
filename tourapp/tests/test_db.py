"""``tourapp.db`` against the real PostgreSQL.

``prepared_cursor``'s statements are seen as the ORM's are (``connection.queries``,
``CaptureQueriesContext``, ``connection.execute_wrappers``) and raise Django's errors; the insert
builders write what ``save()`` writes; ``retry_on_connection_loss`` runs a write whose backend was
terminated again on a new connection, and inside a transaction lets the error out at once.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError, OperationalError, connection, reset_queries, transaction
from django.test.utils import CaptureQueriesContext

from tourapp.db import (
    CONNECTION_ERRORS,
    mark_in_database,
    model_insert_params,
    model_insert_sql,
    prepared_cursor,
    retry_on_connection_loss,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _select_answer(answer: int) -> int:
    with prepared_cursor() as cursor:
        row = cursor.execute("SELECT %(answer)s::int AS answer", {"answer": answer}, prepare=True).fetchone()
    return int(row[0])


def test_prepared_statements_show_in_captured_queries_with_their_parameters() -> None:
    # when
    with CaptureQueriesContext(connection) as captured:
        answer = _select_answer(42)

    # then
    assert answer == 42
    assert [query["sql"] for query in captured.captured_queries] == ["SELECT 42::int AS answer"]
    assert float(captured.captured_queries[0]["time"]) >= 0


def test_prepared_statements_are_not_logged_when_django_does_not_log_queries(settings) -> None:
    # given: DEBUG off and no capture, as in production
    settings.DEBUG = False
    reset_queries()
    assert not connection.queries_logged

    # when
    _select_answer(7)

    # then
    assert len(connection.queries_log) == 0


def test_prepared_statements_go_through_the_connection_execute_wrappers() -> None:
    # given: an APM-style hook
    seen: list[tuple[str, Any]] = []

    def hook(execute, sql, params, many, context):
        seen.append((sql, params))
        return execute(sql, params, many, context)

    # when
    with connection.execute_wrapper(hook):
        answer = _select_answer(3)

    # then
    assert answer == 3
    assert seen == [("SELECT %(answer)s::int AS answer", {"answer": 3})]


def test_prepared_statement_errors_are_djangos() -> None:
    # given
    Group.objects.create(name="taken")

    # when / then
    with pytest.raises(IntegrityError), transaction.atomic(), prepared_cursor() as cursor:
        cursor.execute(f"INSERT INTO {Group._meta.db_table} (name) VALUES (%s)", ["taken"])  # noqa: S608 - test statement


def test_a_row_written_by_the_insert_builders_reads_back_as_the_instance() -> None:
    # given: a new instance whose id is reserved first, as the fast paths do
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id'))", [Group._meta.db_table])
        (group_id,) = cursor.fetchone()
    group = Group(id=group_id, name="writers")

    # when
    with prepared_cursor() as cursor:
        cursor.execute(model_insert_sql(Group, param_prefix="g_"), model_insert_params(group, param_prefix="g_"))
    mark_in_database(group)

    # then: the ORM reads the same row, and the instance is left as save() leaves it
    assert Group.objects.filter(pk=group_id, name="writers").exists()
    assert not group._state.adding and group._state.db == connection.alias


def test_the_insert_builders_need_the_primary_key_first() -> None:
    with pytest.raises(ValueError, match="primary key"):
        model_insert_params(Group(name="no id yet"), param_prefix="g_")


def _terminate_own_backend() -> None:
    pid = connection.connection.info.backend_pid
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return int(cursor.fetchone()[0])


def test_a_write_whose_backend_was_terminated_runs_again_on_a_new_connection() -> None:
    # given: a connection whose backend has just been terminated
    first_pid = _backend_pid()
    _terminate_own_backend()
    # when
    pid = retry_on_connection_loss(_backend_pid, what="reading the backend pid", pause=0.01)
    # then
    assert pid != first_pid


def test_inside_a_transaction_a_lost_connection_is_not_retried() -> None:
    calls: list[int] = []

    def write() -> int:
        calls.append(1)
        return _backend_pid()

    with pytest.raises(CONNECTION_ERRORS), transaction.atomic():
        _backend_pid()
        _terminate_own_backend()
        retry_on_connection_loss(write, what="a write in a transaction", pause=0.01)
    assert calls == [1]
    connection.close()


def test_a_database_that_stays_away_gives_up_after_the_attempts(monkeypatch) -> None:
    calls: list[int] = []

    def refused() -> None:
        calls.append(1)
        raise OperationalError("connection refused")

    with pytest.raises(OperationalError):
        retry_on_connection_loss(refused, what="a refused write", attempts=3, pause=0.01)
    assert len(calls) == 3
