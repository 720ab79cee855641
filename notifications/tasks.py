"""Notification tasks: thin, take ids, ``acks_late`` (idempotent: see ``notification_send``).

Retries are explicit (``self.retry``) rather than ``autoretry_for`` so the limits come from
settings at run time, and so the service can record every attempt and mark the final failure.
Backoff: exponential, full jitter, capped by ``NOTIFICATION_RETRY_BACKOFF_MAX_SECONDS``.
"""

from __future__ import annotations

import random
from datetime import timedelta

from celery import shared_task
from django.conf import settings

from notifications.services import notification_send, notifications_sweep


def retry_countdown(retries: int) -> float:
    cap = settings.NOTIFICATION_RETRY_BACKOFF_MAX_SECONDS
    return random.uniform(0, min(cap, 2 ** (retries + 1)))


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def notification_send_task(self, notification_id: int) -> str:  # type: ignore[no-untyped-def] - Celery bound task
    max_retries = settings.NOTIFICATION_MAX_RETRIES
    outcome = notification_send(notification_id=notification_id, final_attempt=self.request.retries >= max_retries)
    if outcome == "retry":
        raise self.retry(countdown=retry_countdown(self.request.retries), max_retries=max_retries)
    return outcome


@shared_task(acks_late=True)
def notification_sweep_task() -> int:
    return notifications_sweep(older_than=timedelta(seconds=settings.NOTIFICATION_SWEEP_AFTER_SECONDS))
