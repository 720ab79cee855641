"""Helpers for the consumer tests: wire-format payloads, publishing to RabbitMQ / Kafka as other
producers would, per-test broker names, and running the Celery tasks the consumers dispatched.

Fixtures are defined here under explicit names and imported by the test modules that use them.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from django.conf import settings
from kombu import Producer

from messaging.amqp import events_connection, events_exchange
from messaging.events import (
    HEADER_CORRELATION_ID,
    HEADER_EVENT_ID,
    HEADER_EVENT_TYPE,
    TIER_PREMIUM,
    TOUR_BOOKED,
    routing_key_for,
)
from messaging.registry import handlers_all


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


def subprocess_database_url() -> str:
    """The test database as a DATABASE_URL, for subprocesses (worker, command) of a transactional test."""
    db = settings.DATABASES["default"]
    host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{host}:{port}/{db['NAME']}"


def wait_until(predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# ------------------------------------------------------------------ per-test RabbitMQ names
@pytest.fixture(name="amqp_env")
def _amqp_env_fixture(settings: Any) -> Iterator[str]:
    """A unique exchange and queue prefix for this test, short retry delays; queues deleted after."""
    token = uuid.uuid4().hex[:8]
    settings.EVENTS_EXCHANGE = f"tour_events.ctest.{token}"
    settings.EVENTS_QUEUE_PREFIX = f"ctest.{token}."
    settings.EVENTS_RETRY_DELAYS = [0.05, 0.1]
    settings.EVENTS_PREFETCH_COUNT = 20
    yield settings.EVENTS_QUEUE_PREFIX
    with events_connection() as connection, contextlib.suppress(Exception):
        channel = connection.channel()
        # Every registered handler's queues, and those of the handlers tests register for a while.
        for handler in sorted({h.name for h in handlers_all()} | {"flaky", "bench"}):
            base = f"{settings.EVENTS_QUEUE_PREFIX}{handler}.tour_events"
            for name in [base, f"{base}.dlq", *[f"{base}.retry.{round(d * 1000)}ms" for d in (0.05, 0.1)]]:
                with contextlib.suppress(Exception):
                    channel.queue_delete(name)
        for exchange in (settings.EVENTS_EXCHANGE, f"{settings.EVENTS_EXCHANGE}.dlx"):
            with contextlib.suppress(Exception):
                channel.exchange_delete(exchange)


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


# ------------------------------------------------------------------ per-test Kafka topic
@pytest.fixture(name="fresh_topic")
def _fresh_topic_fixture(settings: Any) -> Iterator[str]:
    """A new 3-partition topic (and its DLQ topic) for this test only, deleted afterwards."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    name = f"tour_events.ctest.{uuid.uuid4().hex[:8]}"
    settings.KAFKA_TOPIC = name
    settings.KAFKA_DLQ_TOPIC = f"{name}.dlq"
    settings.KAFKA_CONSUMER_GROUP = f"ctest.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
    try:
        admin.create_topics([NewTopic(name, 3, 1), NewTopic(f"{name}.dlq", 1, 1)])
        yield name
    finally:
        with contextlib.suppress(Exception):
            admin.delete_topics([name, f"{name}.dlq"])
        admin.close()


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


# ------------------------------------------------------------------ Celery tasks dispatched by consumers
@pytest.fixture(name="celery_tasks")
def _celery_tasks_fixture() -> Iterator[Callable[..., list[dict[str, Any]]]]:
    """``run()`` reads the session's Celery queue and executes what the consumers dispatched.

    Returns each task's name, args and headers, so tests can check the correlation id travelled.
    The queue is purged first, so a test only sees its own tasks.
    """
    from tourapp.celery import app

    def drain(*, execute: bool = True, expected: int = 0, timeout: float = 10.0) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        with app.connection_for_write() as connection:
            queue = connection.SimpleQueue(settings.CELERY_TASK_DEFAULT_QUEUE, no_ack=True)
            try:
                while True:
                    try:
                        message = queue.get(timeout=0.2)
                    except queue.Empty:
                        if len(seen) >= expected or time.monotonic() >= deadline:
                            break
                        continue
                    headers = message.headers
                    if not headers.get("task", "").startswith("notifications."):
                        continue  # other apps' tasks (e.g. the relay's) are not ours to run here
                    args, kwargs, _embed = message.decode() if message.body else ([], {}, {})
                    seen.append({"task": headers["task"], "args": args, "headers": headers})
                    if execute:
                        app.tasks[headers["task"]].apply(args=args, kwargs=kwargs, headers=headers)
            finally:
                queue.close()
        return seen

    drain(execute=False, timeout=0)
    yield drain
