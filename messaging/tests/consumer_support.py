"""Helpers for the consumer tests: wire-format payloads, publishing to RabbitMQ / Kafka as other
producers would, and reading back what landed in a queue or topic.

The fixtures these tests use (``amqp_env``, ``fresh_topic``: root ``conftest.py``;
``celery_tasks``: ``messaging/tests/conftest.py``) live in conftest files, not here.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from kombu import Producer

from bookings.event_schema import TIER_PREMIUM, TOUR_BOOKED
from messaging.amqp import events_connection, events_exchange
from messaging.events import HEADER_CORRELATION_ID, HEADER_EVENT_ID, HEADER_EVENT_TYPE, routing_key_for
from tests.support.waiting import wait_until


def booking_payload(**overrides: Any) -> dict[str, Any]:
    """A ``tour.booked`` body in the wire format (ARCHITECTURE.md), ours (with ``eventId``)."""
    payload: dict[str, Any] = {
        "eventId": str(uuid.uuid4()),
        "eventType": TOUR_BOOKED,
        "occurredAt": datetime.now(UTC).isoformat(),
        "bookingId": int(uuid.uuid4().int % 1_000_000_000),
        "tourId": 1,
        "departureId": 1,
        "userId": 1,
        "bookingDate": datetime.now(UTC).isoformat(),
        "status": "confirmed",
        "seats": 2,
        "tier": TIER_PREMIUM,
        "totalPrice": "199.99",
        "currency": "USD",
        "userEmail": "user@example.com",
        "phone": "+33612345678",
        "tourName": "Paris City Tour",
    }
    payload.update(overrides)
    return payload


def foreign_payload(**overrides: Any) -> dict[str, Any]:
    """What the lesson's Node.js service sends: no eventId/eventType in the body, numeric price."""
    payload = booking_payload(totalPrice=199.99, **overrides)
    payload.pop("eventId")
    payload.pop("eventType")
    payload.pop("currency")
    return payload


def wire_headers(payload: dict[str, Any], correlation_id: str | None = None) -> dict[str, str]:
    headers = {HEADER_EVENT_TYPE: payload.get("eventType", TOUR_BOOKED)}
    if payload.get("eventId"):
        headers[HEADER_EVENT_ID] = payload["eventId"]
    if correlation_id:
        headers[HEADER_CORRELATION_ID] = correlation_id
    return headers


def amqp_publish(
    messages: list[tuple[bytes | dict[str, Any], dict[str, Any]]],
    *,
    routing_key: str | None = None,
) -> None:
    """Publish (body, headers) pairs to the events exchange with confirms, as a producer would."""
    with events_connection(transport_options={"confirm_publish": True}) as connection:
        producer = Producer(connection, exchange=events_exchange())
        for body, headers in messages:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            event_type = headers.get(HEADER_EVENT_TYPE) or TOUR_BOOKED
            producer.publish(
                raw,
                routing_key=routing_key or routing_key_for(event_type, TIER_PREMIUM),
                headers=headers,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                message_id=headers.get(HEADER_EVENT_ID),
                correlation_id=headers.get(HEADER_CORRELATION_ID),
            )


def kafka_produce(topic: str, messages: list[tuple[bytes | dict[str, Any], dict[str, Any]]]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, acks="all")
    try:
        for body, headers in messages:
            raw = body if isinstance(body, bytes) else json.dumps(body).encode()
            key = str(body.get("bookingId", "x")).encode() if isinstance(body, dict) else b"raw"
            producer.send(topic, key=key, value=raw, headers=[(k, v.encode()) for k, v in headers.items()])
        producer.flush(timeout=30)
    finally:
        producer.close(timeout=5)


def amqp_queue_get_all(queue_name: str) -> list[Any]:
    """Every message currently in ``queue_name`` (acked: the queue is emptied)."""
    messages = []
    with events_connection() as connection:
        channel = connection.channel()
        while True:
            message = channel.basic_get(queue_name, no_ack=True)
            if message is None:
                return messages
            messages.append(message)


def kafka_read_all(topic: str, *, expected: int, timeout: float = 15.0) -> list[Any]:
    """Records of ``topic`` from the beginning until ``expected`` were read (or the deadline)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, group_id=None, enable_auto_commit=False
    )
    try:
        partitions = wait_until(lambda: consumer.partitions_for_topic(topic), timeout=10, what=f"topic {topic}")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Any] = []
        deadline = time.monotonic() + timeout
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()
