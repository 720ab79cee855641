"""Claim: lease a batch of due deliveries of one destination, in one statement.

The statement (``RELAY_CLAIM_SQL`` in ``messaging.queries``) takes the due heads with ``FOR
UPDATE SKIP LOCKED``, pushes their ``next_attempt_at`` forward by the lease and names this
process's liveness token, so parallel relays never take the same row and a dead relay's rows are
due again at once (``messaging.relay.liveness``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.db import connection
from django.utils import timezone

from messaging.publishers.base import OutboundMessage
from messaging.queries import RELAY_CLAIM_SQL, RELAY_RELAX_DURABILITY_SQL
from messaging.relay.liveness import relay_token


class ClaimedDelivery(NamedTuple):  # one per row claimed: a named tuple, cheaper to build than a dataclass
    message: OutboundMessage
    attempts: int


@dataclass(slots=True)
class ClaimedBatch:
    destination: str
    claimed: list[ClaimedDelivery]
    lease: datetime
    started: float


def claim_deliveries(*, destination: str, limit: int, now: datetime, lease: datetime) -> list[ClaimedDelivery]:
    """Lease up to ``limit`` due deliveries until ``lease``, in id order."""
    # One statement, so one round trip and atomic by itself: no explicit transaction needed.
    with connection.cursor() as cursor:
        params: dict[str, Any] = {
            "destination": destination,
            "now": now,
            "lease": lease,
            "limit": limit,
            "token": relay_token(),
        }
        cursor.execute(RELAY_CLAIM_SQL, params)
        rows = cursor.fetchall()
    claimed = [
        ClaimedDelivery(
            message=OutboundMessage(
                delivery_id=row[0],
                event_id=row[2],
                event_type=row[3],
                routing_key=row[4],
                message_key=row[5],
                body=row[6].encode(),
                headers=json.loads(row[8]),
                correlation_id=row[7],
            ),
            attempts=row[1],
        )
        for row in rows
    ]
    claimed.sort(key=lambda c: c.message.delivery_id)
    return claimed


def claim_batch(*, destination: str, batch_size: int | None) -> ClaimedBatch:
    """Claim the next batch of ``destination`` with a fresh lease (``OUTBOX_CLAIM_LEASE_SECONDS``)."""
    started = time.monotonic()
    now = timezone.now()
    lease = now + timedelta(seconds=settings.OUTBOX_CLAIM_LEASE_SECONDS)
    claimed = claim_deliveries(
        destination=destination, limit=batch_size or settings.OUTBOX_BATCH_SIZE, now=now, lease=lease
    )
    return ClaimedBatch(destination=destination, claimed=claimed, lease=lease, started=started)


def relax_durability() -> None:
    """For the pipelined drain's own connection (closed when the drain ends): commits do not wait
    for the WAL flush. If the database crashes and forgets a claim, the row is simply due again; if
    it forgets a "delivered", the row is published again. Both are the at-least-once the relay
    already promises, and each batch saves two fsyncs."""
    with connection.cursor() as cursor:
        cursor.execute(RELAY_RELAX_DURABILITY_SQL)
