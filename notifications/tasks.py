"""Notification tasks: thin, take ids, ``acks_late`` (idempotent: see ``notification_send``).

Retries are explicit (``self.retry``) rather than ``autoretry_for`` so the limits come from
settings at run time, and so the service can record every attempt and mark the final failure.
Backoff: exponential, full jitter, capped by ``NOTIFICATION_RETRY_BACKOFF_MAX_SECONDS``.

Time limits: every task has Celery's soft and hard limits (``CELERY_TASK_SOFT_TIME_LIMIT`` /
``CELERY_TASK_TIME_LIMIT``, the batch task its own in ``CELERY_TASK_ANNOTATIONS``). Each send is
bounded by the backend's timeout first; the soft limit is the backstop: the notification being
sent goes back to ``pending`` and is retried, and a batch hands the rest to single-send tasks.
A database that stays unreachable through the service's reconnects is handled the same way.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from notifications.services import NOTIFICATION_SEND_BATCH_TASK, notification_send, notifications_sweep
from tourapp.db import CONNECTION_ERRORS

logger = logging.getLogger(__name__)


# What ends a batch early and hands its rest to single sends (each retried with its own backoff).
BATCH_STOPPERS: tuple[type[BaseException], ...] = (SoftTimeLimitExceeded, *CONNECTION_ERRORS)


def retry_countdown(retries: int) -> float:
    cap = settings.NOTIFICATION_RETRY_BACKOFF_MAX_SECONDS
    return random.uniform(0, min(cap, 2 ** (retries + 1)))


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def notification_send_task(self: Task, notification_id: int) -> str:
    max_retries = settings.NOTIFICATION_MAX_RETRIES
    try:
        outcome = notification_send(notification_id=notification_id, final_attempt=self.request.retries >= max_retries)
    except SoftTimeLimitExceeded:
        outcome = "retry"  # the service gave the row back to pending
    except CONNECTION_ERRORS as exc:
        # the database stayed away through the service's own retries: try again later
        logger.warning("notification %s: database unavailable (%s); retrying", notification_id, exc)
        outcome = "retry"
    if outcome == "retry":
        raise self.retry(countdown=retry_countdown(self.request.retries), max_retries=max_retries)
    return outcome


@shared_task(name=NOTIFICATION_SEND_BATCH_TASK, acks_late=True, reject_on_worker_lost=True)
def notification_send_batch_task(notification_ids: list[int]) -> dict[str, int]:
    """Send several notifications (one event's, or a chunk of a Kafka batch); idempotent per row.

    A transient failure is handed to ``notification_send_task`` with a backoff, so one slow
    recipient never holds back or repeats the others; so is everything left when the soft time
    limit strikes (a provider that times out on every message).
    """
    outcomes: dict[str, int] = {}
    for position, notification_id in enumerate(notification_ids):
        try:
            outcome = notification_send(notification_id=notification_id, final_attempt=False)
        except BATCH_STOPPERS as exc:
            rest = notification_ids[position:]
            reason = "out of time" if isinstance(exc, SoftTimeLimitExceeded) else f"database unavailable ({exc})"
            logger.warning("notification batch %s; %d notification(s) handed to single sends", reason, len(rest))
            for pending_id in rest:
                notification_send_task.apply_async(args=(pending_id,), countdown=retry_countdown(0))
            outcomes["retry"] = outcomes.get("retry", 0) + len(rest)
            break
        if outcome == "retry":
            notification_send_task.apply_async(args=(notification_id,), countdown=retry_countdown(0))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


@shared_task(acks_late=True)
def notification_sweep_task() -> int:
    return notifications_sweep(older_than=timedelta(seconds=settings.NOTIFICATION_SWEEP_AFTER_SECONDS))
