"""Dead letters: what a consumer could not handle, recorded with the reason, and re-drivable.

The message also sits in the broker's DLQ (RabbitMQ dead-letter queue / Kafka DLQ topic); the
``DeadLetter`` row is what operators search and re-drive. Re-driving publishes the original body
back to the queue / topic it came from; the inbox makes that safe if it had been applied after all.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from messaging.models import DeadLetter
from messaging.publishers.republish import republish_to_queue, republish_to_topic
from tourapp.metrics import CONSUMER_DEAD_LETTERED

logger = logging.getLogger(__name__)

_MAX_STORED_BODY = 256 * 1024


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return "" if value is None else str(value)


def json_safe_headers(headers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Broker headers (bytes values, AMQP tables) as something a JSONField can store."""
    safe: dict[str, Any] = {}
    for key, value in (headers or {}).items():
        try:
            json.dumps(value)
            safe[str(key)] = value
        except TypeError:
            safe[str(key)] = _text(value) if not isinstance(value, list | tuple) else [_text(v) for v in value]
    return safe


def dead_letter_record(
    *,
    transport: str,
    source: str,
    reason: str,
    body: bytes | str,
    headers: Mapping[str, Any] | None = None,
    handler: str = "",
    routing_key: str = "",
    kafka_partition: int | None = None,
    kafka_offset: int | None = None,
    message_key: str = "",
    event_type: str = "",
    event_id: str = "",
    correlation_id: str = "",
) -> DeadLetter:
    """Insert one ``DeadLetter`` row (the broker-side DLQ copy is the caller's job)."""
    dead = DeadLetter.objects.create(
        transport=transport,
        source=source[:255],
        handler=handler[:64],
        routing_key=routing_key[:255],
        kafka_partition=kafka_partition,
        kafka_offset=kafka_offset,
        message_key=message_key[:255],
        headers=json_safe_headers(headers),
        body=_text(body)[:_MAX_STORED_BODY],
        reason=reason,
        event_type=event_type[:64],
        event_id=event_id[:64],
        correlation_id=correlation_id[:128],
    )
    CONSUMER_DEAD_LETTERED.labels(handler=handler or "-", transport=transport).inc()
    logger.warning(
        "dead-lettered a message from %s: %s",
        source,
        reason,
        extra={"dead_letter_id": dead.pk, "transport": transport, "handler": handler},
    )
    return dead


def dead_letter_redrive_to_broker(*, dead_letter_id: int) -> bool:
    """Publish a dead letter back to its source queue/topic; False if it was not ``dead`` any more.

    Claim first (conditional update, short transaction), publish with no lock held, and give the
    claim back if the publish failed.
    """
    with transaction.atomic():
        claimed = DeadLetter.objects.filter(pk=dead_letter_id, state=DeadLetter.State.DEAD).update(
            state=DeadLetter.State.REDRIVEN, redriven_at=timezone.now()
        )
    if not claimed:
        return False
    dead = DeadLetter.objects.get(pk=dead_letter_id)
    try:
        if dead.transport == DeadLetter.Transport.RABBITMQ:
            republish_to_queue(queue_name=dead.source, body=dead.body.encode(), headers=dead.headers)
        else:
            republish_to_topic(topic=dead.source, key=dead.message_key, body=dead.body.encode(), headers=dead.headers)
    except Exception:
        DeadLetter.objects.filter(pk=dead_letter_id).update(state=DeadLetter.State.DEAD, redriven_at=None)
        raise
    logger.info("re-drove dead letter %s to %s", dead.pk, dead.source)
    return True


def dead_letters_discard(*, dead_letter_ids: Iterable[int]) -> int:
    """Mark dead letters ``discarded`` (the row stays, for the record); returns how many were still dead."""
    return DeadLetter.objects.filter(pk__in=list(dead_letter_ids), state=DeadLetter.State.DEAD).update(
        state=DeadLetter.State.DISCARDED
    )
