"""The shared test support: ``wait_until`` returns the first truthy value, or fails naming what
it waited for and what it saw last."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.support.waiting import wait_until


def test_wait_until_returns_the_first_truthy_value() -> None:
    # given a probe that answers on its third call
    answers = iter([None, 0, "ready"])

    # when / then
    assert wait_until(lambda: next(answers), timeout=5, what="the third answer", interval=0) == "ready"


def test_wait_until_times_out_naming_what_it_waited_for_and_the_last_value_seen() -> None:
    # given a probe that stays falsy
    # when / then
    with pytest.raises(AssertionError, match=r"waiting for the queue to drain \(last seen: 0\)"):
        wait_until(lambda: 0, timeout=0.05, what="the queue to drain", interval=0.01)


def test_wait_until_treats_an_ignored_error_as_not_yet_and_reports_it() -> None:
    # given a probe of a service that refuses connections
    def probe() -> bool:
        raise ConnectionRefusedError("still starting")

    # when / then
    with pytest.raises(AssertionError, match="still starting"):
        wait_until(probe, timeout=0.05, what="the service", interval=0.01, ignoring=(OSError,))


def test_wait_until_lets_any_other_error_through_at_once() -> None:
    # given a probe with a bug
    def probe() -> bool:
        raise KeyError("typo")

    # when / then it fails at once, not after the timeout
    started = time.monotonic()
    with pytest.raises(KeyError):
        wait_until(probe, timeout=30, what="the service", ignoring=(OSError,))
    assert time.monotonic() - started < 5


def _flush_failing(times: int, message: str) -> tuple[list[int], Any]:
    from django.core.management.base import CommandError
    from django.db import OperationalError

    calls: list[int] = []

    def teardown(_test_case: object) -> None:
        calls.append(1)
        if len(calls) <= times:
            raise CommandError("Database test_tourapp couldn't be flushed.") from OperationalError(message)

    return calls, teardown


def test_a_flush_that_deadlocked_with_a_running_process_is_retried() -> None:
    from tests.support.flush import retrying

    calls, teardown = _flush_failing(2, "deadlock detected\nDETAIL: Process 1 waits for AccessExclusiveLock")
    retrying(teardown)(object())
    assert len(calls) == 3


def test_a_flush_that_failed_for_another_reason_fails_at_once() -> None:
    from django.core.management.base import CommandError

    from tests.support.flush import retrying

    calls, teardown = _flush_failing(1, 'relation "bookings_booking" does not exist')
    with pytest.raises(CommandError):
        retrying(teardown)(object())
    assert len(calls) == 1
