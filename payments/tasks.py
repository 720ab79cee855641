"""Payment tasks: thin, take ids, ``acks_late`` + ``reject_on_worker_lost`` (idempotent: see
``payments.services``; a worker killed mid-charge gets the task back, and the same idempotency key
gets the same charge).

Only transient gateway errors are retried (``self.retry``), with exponential backoff and full
jitter capped by ``PAYMENTS_RETRY_BACKOFF_MAX_SECONDS``; after ``PAYMENTS_MAX_RETRIES`` the payment
is ``dead``, in the admin, re-drivable.
"""

from __future__ import annotations

import random
from datetime import timedelta

from celery import Task, shared_task
from django.conf import settings

from payments.services import (
    PAYMENT_CHARGE_TASK,
    PAYMENT_REFUND_TASK,
    payment_charge,
    payment_refund,
    payments_sweep,
)


def retry_countdown(retries: int) -> float:
    cap = settings.PAYMENTS_RETRY_BACKOFF_MAX_SECONDS
    return random.uniform(0, min(cap, 2 ** (retries + 1)))


@shared_task(name=PAYMENT_CHARGE_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def payment_charge_task(self: Task, payment_id: int) -> str:
    max_retries = settings.PAYMENTS_MAX_RETRIES
    outcome = payment_charge(payment_id=payment_id, final_attempt=self.request.retries >= max_retries)
    if outcome == "retry":
        raise self.retry(countdown=retry_countdown(self.request.retries), max_retries=max_retries)
    return outcome


@shared_task(name=PAYMENT_REFUND_TASK, bind=True, acks_late=True, reject_on_worker_lost=True, max_retries=None)
def payment_refund_task(self: Task, payment_id: int) -> str:
    max_retries = settings.PAYMENTS_MAX_RETRIES
    outcome = payment_refund(payment_id=payment_id, final_attempt=self.request.retries >= max_retries)
    if outcome == "retry":
        raise self.retry(countdown=retry_countdown(self.request.retries), max_retries=max_retries)
    return outcome


@shared_task(acks_late=True)
def payments_sweep_task() -> int:
    return payments_sweep(older_than=timedelta(seconds=settings.PAYMENTS_SWEEP_AFTER_SECONDS))
