"""Writes to the outbox. The only way domain code emits an event.

``outbox_event_record`` must be called inside the caller's ``transaction.atomic()``: the event
commits or rolls back with the business change. After commit it hands the event to the relay.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import transaction

from messaging.events import HEADER_CORRELATION_ID, HEADER_EVENT_ID, HEADER_EVENT_TYPE
from messaging.models import OutboxDelivery, OutboxEvent
from tourapp.correlation import get_correlation_id, new_correlation_id


def outbox_event_record(
    *,
    aggregate_type: str,
    aggregate_id: str,
    event_type: str,
    routing_key: str,
    payload: dict[str, Any],
) -> OutboxEvent:
    """Insert one event and one pending delivery per destination, in the current transaction.

    ``payload`` gets ``eventId`` and ``eventType`` filled in, so the body alone is self-describing.
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
    event.save()
    aggregate_key = f"{aggregate_type}:{aggregate_id}"
    OutboxDelivery.objects.bulk_create(
        OutboxDelivery(event=event, destination=destination, aggregate_key=aggregate_key)
        for destination in settings.OUTBOX_DESTINATIONS
    )
    transaction.on_commit(lambda: outbox_relay_kick(event_ids=[event.pk]))
    return event


def outbox_relay_kick(*, event_ids: list[int]) -> None:
    """Post-commit hook: ask the relay to deliver these events now (the sweeper is the safety net).

    Replaced by the relay in ``messaging.relay``; a no-op until then.
    """
