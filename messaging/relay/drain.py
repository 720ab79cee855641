"""Drain: run batches for one destination until nothing is due, it is unavailable, or the budget is spent.

What the relay loop and the sweep call. A handful of rows (the usual wake-up) goes batch after
batch on the caller's connection; once a batch comes back full (a backlog) the rest is drained by
``messaging.relay.pipeline``. Inside a transaction (tests with a rolled back database) everything
runs sequentially on the caller's connection.
"""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection

from messaging.publishers.base import Publisher
from messaging.relay.batch import outbox_relay_batch
from messaging.relay.outcomes import DrainResult
from messaging.relay.pause import outbox_destination_is_paused
from messaging.relay.pipeline import drain_pipelined
from messaging.relay.publisher_cache import outbox_publisher


def outbox_relay_drain(
    *,
    destination: str,
    time_budget_seconds: float | None = None,
    batch_size: int | None = None,
    publisher: Publisher | None = None,
) -> DrainResult:
    """Run batches for one destination until nothing is due, the destination is unavailable, or the budget is spent.

    Outside a transaction, once a batch comes back full (a backlog), the batches are pipelined:
    helper threads with their own database connections claim the next batches and record the
    published ones while batch *n* is on the wire. Order is unaffected: rows of batch *n* stay
    ``pending`` (leased) until recorded, so the claim of *n+1* cannot take a later event of the
    same aggregate.
    """
    started = time.monotonic()
    budget = settings.OUTBOX_SWEEP_BUDGET_SECONDS if time_budget_seconds is None else time_budget_seconds
    drain = DrainResult(destination=destination)
    if outbox_destination_is_paused(destination=destination):
        drain.paused = True
        return drain
    publisher = publisher or outbox_publisher(destination)
    deadline = started + budget
    if connection.in_atomic_block:
        _drain_sequential(drain, publisher, batch_size, deadline=deadline)
    # The usual wake-up (a handful of rows) stays on this connection; a full batch means a backlog.
    elif _drain_sequential(drain, publisher, batch_size, deadline=deadline, until_full=True):
        drain_pipelined(drain, publisher, batch_size, deadline=deadline)
    drain.seconds = time.monotonic() - started
    return drain


def _drain_sequential(
    drain: DrainResult, publisher: Publisher, batch_size: int | None, *, deadline: float, until_full: bool = False
) -> bool:
    """Batches one after the other; with ``until_full``, returns True as soon as a batch came back full."""
    size = batch_size or settings.OUTBOX_BATCH_SIZE
    while True:
        batch = outbox_relay_batch(destination=drain.destination, batch_size=batch_size, publisher=publisher)
        if batch.claimed == 0:
            return False
        drain.add(batch)
        if batch.unavailable or time.monotonic() >= deadline:
            return False
        if until_full and batch.claimed >= size:
            return True
