"""Writes to the outbox. The only way domain code emits an event.

``outbox_event_record`` must be called inside the caller's ``transaction.atomic()``: the event
commits or rolls back with the business change. After commit it hands the event to the relay.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from functools import cache, partial
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from messaging.events import HEADER_CORRELATION_ID, HEADER_EVENT_ID, HEADER_EVENT_TYPE
from messaging.models import OutboxDelivery, OutboxEvent
from messaging.selectors import outbox_dead_deliveries
from tourapp.correlation import get_correlation_id, new_correlation_id
from tourapp.db import RowInsert, one_row, server_side_cursor

logger = logging.getLogger(__name__)


def outbox_event_record(
    *,
    aggregate_type: str,
    aggregate_id: str,
    event_type: str,
    routing_key: str,
    payload: dict[str, Any],
    along_with: RowInsert | None = None,
) -> OutboxEvent:
    """Insert one event and one pending delivery per destination, in the current transaction.

    ``payload`` gets ``eventId`` and ``eventType`` filled in, so the body alone is self-describing.
    The same statement issues ``NOTIFY OUTBOX_NOTIFY_CHANNEL``: PostgreSQL delivers it when, and
    only if, the transaction commits, so it is the on-commit kick of the workers' relay loops
    (``messaging.relay_loop``) without a round trip of its own; a rollback sends nothing.

    ``along_with`` (``tourapp.db.model_insert_statement``) is the business row the event is about,
    its primary key already assigned: the same statement inserts it, so the business change and
    its event take one round trip, and stand or fall together (a constraint violation of that row
    raises here, as ``IntegrityError``, and writes neither).
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("outbox_event_record() must run inside the business transaction")
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
    # One round trip for the event, its deliveries and the kick: this runs inside every booking's transaction.
    with server_side_cursor() as cursor:
        cursor.execute(
            _record_sql(along_with.sql if along_with else None),
            {
                **(along_with.params if along_with else {}),
                "event_id": event.event_id,
                "aggregate_type": aggregate_type,
                "aggregate_id": aggregate_id,
                "event_type": event_type,
                "routing_key": routing_key,
                "message_key": event.message_key,
                "payload": json.dumps(event.payload, cls=DjangoJSONEncoder),
                "headers": json.dumps(event.headers),
                "correlation_id": correlation_id,
                "created_at": event.created_at,
                "aggregate_key": f"{aggregate_type}:{aggregate_id}",
                "destinations": ",".join(settings.OUTBOX_DESTINATIONS),  # as text: psycopg dumps lists in Python
                "pending": OutboxDelivery.State.PENDING.value,
                "channel": settings.OUTBOX_NOTIFY_CHANNEL,
            },
            prepare=True,
        )
        (event.pk, _) = one_row(cursor.fetchone())
    if along_with:
        along_with.mark_inserted()
    event._state.adding = False
    event._state.db = connection.alias
    return event


_RECORD_CTES = f"""
event AS (
    INSERT INTO {OutboxEvent._meta.db_table}
        (event_id, aggregate_type, aggregate_id, event_type, routing_key, message_key,
         payload, headers, correlation_id, created_at)
    VALUES (%(event_id)s, %(aggregate_type)s, %(aggregate_id)s, %(event_type)s, %(routing_key)s,
            %(message_key)s, %(payload)s::jsonb, %(headers)s::jsonb, %(correlation_id)s, %(created_at)s)
    RETURNING id
), deliveries AS (
    INSERT INTO {OutboxDelivery._meta.db_table}
        (event_id, destination, state, aggregate_key, attempts, last_error, created_at)
    SELECT event.id, destination, %(pending)s, %(aggregate_key)s, 0, '', %(created_at)s
    FROM event, unnest(string_to_array(%(destinations)s, ',')) AS destination
)
SELECT id, pg_notify(%(channel)s, '') FROM event
"""  # noqa: S608 - table names come from the models, values are bound parameters


@cache
def _record_sql(along_with: str | None) -> str:
    # PostgreSQL runs every data-modifying CTE exactly once, whether or not the query reads it.
    return f"WITH {f'business_row AS ({along_with}),' if along_with else ''}{_RECORD_CTES}"


def outbox_relay_kick(*, event_ids: list[int]) -> None:
    """Post-commit hook for writes other than ``outbox_event_record`` (requeue): wake the relay now
    with a PostgreSQL ``NOTIFY`` (one cheap statement).

    Each Celery worker's relay loop (``messaging.relay_loop``) ``LISTEN``s on
    ``OUTBOX_NOTIFY_CHANNEL`` and drains every destination within milliseconds of the commit. A
    ``NOTIFY`` needs no Celery broker (RabbitMQ being down delays only RabbitMQ deliveries) and
    queues no task behind which side effects would wait (docs/performance.md).

    Never raises: the request that wrote the event has committed and must not fail now. A lost
    kick only delays delivery until the next loop tick or beat sweep (a few seconds).
    """
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, '')", [settings.OUTBOX_NOTIFY_CHANNEL])
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
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_PURGE_SQL, {"cutoff": cutoff, "limit": size})
            deleted = cursor.rowcount
        batches += 1
        total += deleted
        if progress:
            progress(total)
        if deleted < size:
            break
    if total:
        logger.info("outbox: purged %d delivered events", total, extra={"purged": total, "cutoff": cutoff.isoformat()})
    return total


_PURGE_SQL = f"""
WITH doomed AS (
    SELECT e.id FROM {OutboxEvent._meta.db_table} e
    WHERE e.created_at < %(cutoff)s
      AND NOT EXISTS (
          SELECT 1 FROM {OutboxDelivery._meta.db_table} d
          WHERE d.event_id = e.id AND d.state <> '{OutboxDelivery.State.DELIVERED.value}')
    ORDER BY e.id
    LIMIT %(limit)s
    FOR UPDATE OF e SKIP LOCKED
), deliveries AS (
    DELETE FROM {OutboxDelivery._meta.db_table} d USING doomed WHERE d.event_id = doomed.id
)
DELETE FROM {OutboxEvent._meta.db_table} e USING doomed WHERE e.id = doomed.id
"""  # noqa: S608 - table names and the state constant come from the models, values are parameters
