"""One batch: claim, publish outside any transaction, record. Safe in any number of processes.

Publishing is split in ``batch_begin`` (hand the batch to the broker client) and
``batch_complete`` (await its outcome) so the pipelined drain can keep several batches on the
wire. An unexpected publisher error becomes a failure of every row in the batch, so it counts
attempts and ends in ``dead`` instead of looping forever.
"""

from __future__ import annotations

import logging

from django.conf import settings

from messaging.publishers.base import Publisher, PublishOutcome
from messaging.relay.claims import ClaimedBatch, claim_batch
from messaging.relay.metrics import batch_observe
from messaging.relay.outcomes import BatchResult, record_outcome
from messaging.relay.pause import (
    outbox_destination_pause,
    outbox_destination_resume,
    outbox_destination_seen_unavailable,
)
from messaging.relay.publisher_cache import outbox_publisher

logger = logging.getLogger(__name__)


def _publisher_bug(claim: ClaimedBatch, exc: Exception) -> PublishOutcome:
    logger.exception("outbox: publisher raised", extra={"destination": claim.destination})
    return PublishOutcome(failed={c.message.delivery_id: f"{type(exc).__name__}: {exc}" for c in claim.claimed})


def batch_begin(claim: ClaimedBatch, publisher: Publisher) -> object:
    try:
        return publisher.begin([c.message for c in claim.claimed])
    except Exception as exc:  # broad on purpose: see _publisher_bug
        return _publisher_bug(claim, exc)


def batch_complete(claim: ClaimedBatch, handle: object, publisher: Publisher) -> PublishOutcome:
    if isinstance(handle, PublishOutcome) and handle.failed and len(handle.failed) == len(claim.claimed):
        return handle  # batch_begin already turned a publisher bug into failures
    try:
        return publisher.complete(handle)
    except Exception as exc:  # broad on purpose: see _publisher_bug
        return _publisher_bug(claim, exc)


def batch_finish(claim: ClaimedBatch, outcome: PublishOutcome, *, released: bool = False) -> BatchResult:
    """Record a published (or ``released``, never sent) batch: pause/resume the destination, update rows, log."""
    result = BatchResult(destination=claim.destination, claimed=len(claim.claimed))
    pause_seconds = settings.OUTBOX_UNAVAILABLE_BACKOFF_SECONDS
    if released:
        result.unavailable = True
    elif outcome.unavailable:
        result.unavailable = True
        pause_seconds = outbox_destination_pause(destination=claim.destination)
    elif outcome.delivered and outbox_destination_seen_unavailable(destination=claim.destination):
        outbox_destination_resume(destination=claim.destination)
    record_outcome(
        claimed=claim.claimed, outcome=outcome, lease=claim.lease, pause_seconds=pause_seconds, result=result
    )
    batch_observe(result, claim.started, outcome)
    return result


def outbox_relay_batch(
    *, destination: str, batch_size: int | None = None, publisher: Publisher | None = None
) -> BatchResult:
    """Claim, publish and record one batch for one destination. Safe to run in any number of processes."""
    claim = claim_batch(destination=destination, batch_size=batch_size)
    if not claim.claimed:
        return BatchResult(destination=destination)
    publisher = publisher or outbox_publisher(destination)
    return batch_finish(claim, batch_complete(claim, batch_begin(claim, publisher), publisher))
