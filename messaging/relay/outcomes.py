"""Record: write a published batch's outcome back to its rows, in one short transaction.

Delivered rows become ``delivered``; refused rows get ``attempts + 1``, ``last_error`` and an
exponential backoff with jitter, and become ``dead`` after ``OUTBOX_MAX_ATTEMPTS``; undecided rows
(the broker was unreachable or did not confirm) are only deferred, no attempt counted. Every
update is fenced on the batch's lease (``messaging.queries``), so a relay whose lease expired
cannot overwrite the outcome of the relay that took over. Errors are stored and logged with URL
credentials redacted and bounded in length.
"""

from __future__ import annotations

import random
import re
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from messaging.models import OutboxDelivery
from messaging.publishers.base import PublishOutcome
from messaging.queries import RELAY_RECORD_DEFERRED_SQL, RELAY_RECORD_DELIVERED_SQL, RELAY_RECORD_FAILED_SQL
from messaging.relay.claims import ClaimedDelivery

LAST_ERROR_MAX_CHARS = 1000
# user:password@ in any URL (amqp://, kafka SASL, http proxies) never reaches a row or a log line.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s:]*:[^/@\s]*@")

PENDING = OutboxDelivery.State.PENDING.value
DEAD = OutboxDelivery.State.DEAD.value


@dataclass(slots=True)
class BatchResult:
    destination: str
    claimed: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    deferred: int = 0
    unavailable: bool = False


@dataclass(slots=True)
class DrainResult:
    destination: str
    batches: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    deferred: int = 0
    paused: bool = False
    seconds: float = 0.0

    def add(self, batch: BatchResult) -> None:
        self.batches += 1
        self.delivered += batch.delivered
        self.failed += batch.failed
        self.dead += batch.dead
        self.deferred += batch.deferred
        self.paused = self.paused or batch.unavailable


def outbox_backoff_delay(*, attempts: int) -> float:
    """Seconds before retry number ``attempts + 1``: base * 2^attempts, capped, +-20 % jitter."""
    base = settings.OUTBOX_BACKOFF_BASE_SECONDS
    capped = min(settings.OUTBOX_BACKOFF_MAX_SECONDS, base * (2 ** min(attempts, 32)))
    return capped * random.uniform(0.8, 1.2)


def redact_secrets(text: str) -> str:
    return _URL_CREDENTIALS.sub(r"\g<scheme>***:***@", text)


def _bounded_error(text: str) -> str:
    text = redact_secrets(text)
    return text if len(text) <= LAST_ERROR_MAX_CHARS else text[: LAST_ERROR_MAX_CHARS - 1] + "…"


def record_outcome(
    *,
    claimed: list[ClaimedDelivery],
    outcome: PublishOutcome,
    lease: datetime,
    pause_seconds: float,
    result: BatchResult,
) -> None:
    """Record ``outcome`` for the ``claimed`` rows leased until ``lease``; counts go into ``result``.
    Undecided rows are due again after ``pause_seconds`` (with jitter)."""
    now = timezone.now()
    max_attempts = settings.OUTBOX_MAX_ATTEMPTS
    delivered_ids = set(outcome.delivered)
    failed = {c.message.delivery_id: c for c in claimed if c.message.delivery_id in outcome.failed}
    deferred_ids = [
        c.message.delivery_id
        for c in claimed
        if c.message.delivery_id not in delivered_ids and c.message.delivery_id not in failed
    ]
    ids, attempts, states, next_ats, errors = [], [], [], [], []
    for delivery_id, c in failed.items():
        tries = c.attempts + 1
        dead = tries >= max_attempts
        ids.append(delivery_id)
        attempts.append(tries)
        states.append(DEAD if dead else PENDING)
        next_ats.append(None if dead else now + timedelta(seconds=outbox_backoff_delay(attempts=tries)))
        errors.append(_bounded_error(outcome.failed[delivery_id]))
        result.dead += dead
    statements: list[tuple[str, dict[str, Any]]] = []
    if delivered_ids:
        statements.append((RELAY_RECORD_DELIVERED_SQL, {"ids": sorted(delivered_ids), "now": now, "lease": lease}))
    if ids:
        failed_params = {"ids": ids, "attempts": attempts, "states": states, "next_ats": next_ats, "errors": errors}
        statements.append((RELAY_RECORD_FAILED_SQL, {**failed_params, "lease": lease}))
    if deferred_ids:
        reason = outcome.unavailable or "undecided: no confirm from the broker"
        next_at = now + timedelta(seconds=pause_seconds * random.uniform(1.0, 1.3))
        statements.append(
            (
                RELAY_RECORD_DEFERRED_SQL,
                {"ids": deferred_ids, "next_at": next_at, "error": _bounded_error(reason), "lease": lease},
            )
        )
    # The usual batch (all delivered) is one statement, one round trip; mixed outcomes share a transaction.
    with transaction.atomic() if len(statements) > 1 else nullcontext(), connection.cursor() as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)
    result.delivered = len(delivered_ids)
    result.failed = len(failed)
    result.deferred = len(deferred_ids)
