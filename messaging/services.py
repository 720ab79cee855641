"""Writes to the outbox. The only way domain code emits an event.

``outbox_event_record`` must be called inside the caller's ``transaction.atomic()``: the event
commits or rolls back with the business change. After commit it hands the event to the relay.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from messaging.events import HEADER_CORRELATION_ID, HEADER_EVENT_ID, HEADER_EVENT_TYPE
from messaging.models import OutboxDelivery, OutboxEvent
from messaging.queries import outbox_event_insert, outbox_notify, outbox_purge_delivered_batch
from messaging.selectors import outbox_dead_deliveries
from tourapp.correlation import get_correlation_id, new_correlation_id

logger = logging.getLogger(__name__)


def outbox_event_build(
    *,
    aggregate_type: str,
    aggregate_id: str,
    event_type: str,
    routing_key: str,
    payload: dict[str, Any],
) -> OutboxEvent:
    """The event ``outbox_event_record`` writes, built but not written yet: for a domain app that
    writes its business row and the event in one statement of its own, composed from
    ``messaging.queries.OUTBOX_EVENT_INSERT_CTES`` (as ``bookings.queries.booking_insert_with_event``).

    ``payload`` gets ``eventId`` and ``eventType`` filled in, so the body alone is self-describing.
    Must be called inside the business transaction, which must write the event.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("an outbox event must be recorded inside the business transaction")
    correlation_id = get_correlation_id() or new_correlation_id()
    event = OutboxEvent(
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        event_type=event_type,
        routing_key=routing_key,
        message_key=aggregate_id,
        correlation_id=correlation_id,
    )
    event.payload = {"eventId": str(event.event_id), "eventType": event_type, **payload}
    event.headers = {
        HEADER_EVENT_TYPE: event_type,
        HEADER_EVENT_ID: str(event.event_id),
        HEADER_CORRELATION_ID: correlation_id,
    }
    event.created_at = timezone.now()
    return event


def outbox_event_record(
    *,
    aggregate_type: str,
    aggregate_id: str,
    event_type: str,
    routing_key: str,
    payload: dict[str, Any],
) -> OutboxEvent:
    """Insert one event and one pending delivery per destination, in the current transaction.

    ``payload`` gets ``eventId`` and ``eventType`` filled in (``outbox_event_build``). The same
    statement issues ``NOTIFY OUTBOX_NOTIFY_CHANNEL``: PostgreSQL delivers it when, and only if, the
    transaction commits, so it is the on-commit kick of the workers' relay loops
    (``messaging.relay.loop``) without a round trip of its own; a rollback sends nothing.
    """
    event = outbox_event_build(
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        event_type=event_type,
        routing_key=routing_key,
        payload=payload,
    )
    outbox_event_insert(event=event)  # one round trip for the event, its deliveries and the kick
    return event


def outbox_relay_kick(*, event_ids: list[int]) -> None:
    """Post-commit hook for writes other than ``outbox_event_record`` (requeue): wake the relay now
    with a PostgreSQL ``NOTIFY`` (one cheap statement).

    Each Celery worker's relay loop (``messaging.relay.loop``) ``LISTEN``s on
    ``OUTBOX_NOTIFY_CHANNEL`` and drains every destination within milliseconds of the commit. A
    ``NOTIFY`` needs no Celery broker (RabbitMQ being down delays only RabbitMQ deliveries) and
    queues no task behind which side effects would wait (docs/performance.md).

    Never raises: the request that wrote the event has committed and must not fail now. A lost
    kick only delays delivery until the next loop tick or beat sweep (a few seconds).
    """
    try:
        outbox_notify()
    except Exception:  # broad on purpose: a lost kick is the sweeper's job, never the request's
        logger.warning(
            "outbox: could not kick the relay (the sweeper will deliver)", exc_info=True, extra={"event_ids": event_ids}
        )


def outbox_requeue_dead(
    *,
    delivery_ids: Iterable[int] | None = None,
    event_type: str | None = None,
    destination: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    chunk_size: int = 1000,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Make dead deliveries pending again (attempts reset, due now); returns how many.

    Filters combine (AND); ``since``/``until`` apply to the event's creation time. With no filter
    at all every dead delivery is requeued. Works in chunks of ``chunk_size`` rows, each its own
    short transaction, and kicks the relay for each chunk after commit. A requeued row keeps its
    ``last_error`` until it is delivered or fails again.
    """
    dead = outbox_dead_deliveries(  # the same filters `outbox_requeue --dry-run` lists with
        delivery_ids=delivery_ids, event_type=event_type, destination=destination, since=since, until=until
    )
    total = 0
    last_id = 0
    while True:
        with transaction.atomic():
            chunk = list(
                dead.filter(id__gt=last_id)
                .order_by("id")
                .select_for_update(skip_locked=True, of=("self",))
                .values_list("id", "event_id")[:chunk_size]
            )
            if not chunk:
                break
            last_id = chunk[-1][0]
            updated = OutboxDelivery.objects.filter(
                id__in=[row[0] for row in chunk], state=OutboxDelivery.State.DEAD
            ).update(state=OutboxDelivery.State.PENDING, attempts=0, next_attempt_at=None)
            event_ids = sorted({row[1] for row in chunk})
            transaction.on_commit(partial(outbox_relay_kick, event_ids=event_ids))
        total += updated
        if progress:
            progress(total)
    if total:
        logger.info("outbox: requeued %d dead deliveries", total, extra={"requeued": total})
    return total


def outbox_purge_delivered(
    *,
    older_than: timedelta | None = None,
    batch_size: int | None = None,
    max_batches: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Delete events older than the retention whose every delivery is ``delivered``; returns how many.

    Pending and dead deliveries are never purged, however old (no silent expiry). Deletes in
    batches of ``batch_size`` events, each a short statement of its own, skipping rows a relay
    has locked, so the table is never locked as a whole.
    """
    age = older_than if older_than is not None else timedelta(days=settings.OUTBOX_RETENTION_DAYS)
    cutoff = timezone.now() - age
    size = batch_size or settings.OUTBOX_PURGE_BATCH_SIZE
    total = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        with transaction.atomic():
            deleted = outbox_purge_delivered_batch(cutoff=cutoff, limit=size)
        batches += 1
        total += deleted
        if progress:
            progress(total)
        if deleted < size:
            break
    if total:
        logger.info("outbox: purged %d delivered events", total, extra={"purged": total, "cutoff": cutoff.isoformat()})
    return total
