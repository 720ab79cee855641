"""``tourapp.db.retry_on_connection_loss`` against the real PostgreSQL: a write whose backend was
terminated runs again on a new connection; inside a transaction the error goes out at once."""

from __future__ import annotations

import psycopg
import pytest
from django.db import OperationalError, connection, transaction

from tourapp.db import CONNECTION_ERRORS, retry_on_connection_loss

pytestmark = pytest.mark.django_db(transaction=True)


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
