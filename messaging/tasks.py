"""Celery tasks of the outbox, both run by beat: sweep (the relay's safety net) and purge.

Delivery itself starts on commit, in each worker's relay loop (``messaging.relay.loop``); the
sweep catches what no loop picked up. Both tasks are idempotent and safe to run concurrently or
twice: the sweep claims rows with ``SKIP LOCKED`` and a lease (a redelivered task finds nothing
left to claim or re-publishes at most what a dead worker left unrecorded, which consumers
deduplicate); purge deletes only fully delivered events. They never retry themselves: the rows
they leave behind are the retry state.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import close_old_connections

from messaging.relay.drain import outbox_relay_drain
from messaging.relay.metrics import outbox_backlog_observe
from messaging.services import outbox_purge_delivered

logger = logging.getLogger(__name__)


@shared_task(name="messaging.tasks.outbox_sweep_task", ignore_result=True, expires=60)
def outbox_sweep_task(destination: str | None = None) -> None:
    """Beat safety net: without ``destination``, fan out one sweep per destination and refresh the
    backlog gauges; with it, drain that destination until empty or the sweep budget is spent.

    One task per destination keeps an unreachable broker from holding back the other one. Sweeps
    expire after a period so a stopped worker does not find a pile of them when it comes back.
    """
    if destination is None:
        outbox_backlog_observe()
        for name in settings.OUTBOX_DESTINATIONS:
            outbox_sweep_task.apply_async(
                kwargs={"destination": name}, expires=max(settings.OUTBOX_SWEEP_SECONDS * 2, 10)
            )
        return
    close_old_connections()
    result = outbox_relay_drain(destination=destination)
    if result.batches:
        logger.info(
            "outbox sweep %s: %d batches, %d delivered, %d failed, %d deferred in %.2fs",
            destination,
            result.batches,
            result.delivered,
            result.failed,
            result.deferred,
            result.seconds,
            extra={"destination": destination, "delivered": result.delivered, "paused": result.paused},
        )


@shared_task(name="messaging.tasks.outbox_purge_task", ignore_result=True, expires=600)
def outbox_purge_task() -> None:
    """Delete delivered events older than ``OUTBOX_RETENTION_DAYS`` in small batches (never pending/dead)."""
    outbox_purge_delivered()
