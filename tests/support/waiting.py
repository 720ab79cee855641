"""Wait for a condition with a deadline: the one way tests wait (never a bare sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    ignoring: tuple[type[Exception], ...] = (),
) -> T:
    """Return the first truthy value of ``predicate()``, polled every ``interval`` seconds.

    After ``timeout`` seconds raise ``AssertionError`` naming ``what`` and the last value seen.
    An exception of a type in ``ignoring`` counts as "not yet" (a probe of a service that is still
    starting); any other exception propagates at once.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
        except ignoring as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last seen: {last!r})")
        time.sleep(interval)
