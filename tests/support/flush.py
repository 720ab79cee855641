"""Django's between-tests flush, retried when it deadlocks with a process a test started.

Transactional tests end with one ``TRUNCATE`` of every table. The e2e system's processes (web,
worker, Kafka consumer) run for a whole module and keep working between tests (relay sweeps, a
consumer applying the last events): the TRUNCATE's table locks can deadlock with one of their
transactions, and when PostgreSQL picks the TRUNCATE as the victim the flush fails. The process's
own transaction is retried by its code; the flush is retried here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import CommandError
from django.db import OperationalError
from django.test import TransactionTestCase

ATTEMPTS = 5


def _deadlocked(exc: BaseException) -> bool:
    cause = exc.__cause__
    return isinstance(cause, OperationalError) and "deadlock detected" in str(cause)


def retrying(teardown: Callable[[Any], None]) -> Callable[[Any], None]:
    def fixture_teardown(test_case: Any) -> None:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                teardown(test_case)
                return
            except CommandError as exc:
                if attempt == ATTEMPTS or not _deadlocked(exc):
                    raise
                time.sleep(0.1 * attempt)

    return fixture_teardown


@contextmanager
def flush_retrying_deadlocks() -> Iterator[None]:
    original = TransactionTestCase._fixture_teardown
    TransactionTestCase._fixture_teardown = retrying(original)  # type: ignore[method-assign]
    try:
        yield
    finally:
        TransactionTestCase._fixture_teardown = original  # type: ignore[method-assign]
