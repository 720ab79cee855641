"""Fixtures for the messaging tests: events written through the real service, fresh consumers on
the session's RabbitMQ exchange and Kafka topic that read what the relay published, and the
Celery tasks the consumers dispatched (``celery_tasks``).
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from django.db import transaction

from bookings.event_schema import TIER_STANDARD, TOUR_BOOKED, TOUR_CANCELLED
from messaging.amqp import events_connection, events_exchange
from messaging.events import routing_key_for
from messaging.models import OutboxEvent
from messaging.publishers.base import OutboundMessage
from messaging.relay.pause import outbox_destination_resume
from messaging.relay.publisher_cache import outbox_publishers_close
from messaging.services import outbox_event_record

RABBITMQ = "rabbitmq"
KAFKA = "kafka"


@dataclass(frozen=True)
class Received:
    event_id: str
    aggregate_id: str
    event_type: str
    body: dict
    headers: dict
    properties: dict


def record_booking_events(aggregate_ids: list[str], *, cancel: bool = False) -> list[OutboxEvent]:
    """Write ``tour.booked`` (and ``tour.cancelled`` when asked) for each fake booking id, one
    transaction per event, as the bookings service does."""
    events = []
    for aggregate_id in aggregate_ids:
        for event_type in (TOUR_BOOKED, TOUR_CANCELLED) if cancel else (TOUR_BOOKED,):
            with transaction.atomic():
                events.append(
                    outbox_event_record(
                        aggregate_type="booking",
                        aggregate_id=aggregate_id,
                        event_type=event_type,
                        routing_key=routing_key_for(event_type, TIER_STANDARD),
                        payload={"bookingId": aggregate_id, "seats": 2, "totalPrice": "199.99"},
                    )
                )
    return events


def outbound_message(n: int) -> OutboundMessage:
    """The ``n``-th of a run of booking messages, as the relay hands them to a publisher."""
    return OutboundMessage(
        delivery_id=n,
        event_id=f"00000000-0000-0000-0000-{n:012d}",
        event_type=TOUR_BOOKED,
        routing_key="tour.booked.standard",
        message_key=str(n),
        body=b'{"bookingId": "%d", "eventType": "tour.booked"}' % n,
        headers={"eventType": TOUR_BOOKED},
        correlation_id="c",
    )


def fake_booking_ids(count: int) -> list[str]:
    prefix = uuid.uuid4().hex[:6]
    return [f"{prefix}-{n}" for n in range(count)]


@pytest.fixture(autouse=True)
def _relay_clean_state(settings) -> Iterator[None]:
    """Short backoffs for tests; no destination pause or open publisher leaks between tests."""
    settings.OUTBOX_UNAVAILABLE_BACKOFF_SECONDS = 0.5
    settings.OUTBOX_UNAVAILABLE_BACKOFF_MAX_SECONDS = 1.0
    for destination in (RABBITMQ, KAFKA):
        outbox_destination_resume(destination=destination)
    yield
    outbox_publishers_close()
    for destination in (RABBITMQ, KAFKA):
        outbox_destination_resume(destination=destination)


class AmqpReader:
    """A fresh exclusive queue bound to the events exchange (declared before anything is published)."""

    def __init__(self, *, exchange: str, pattern: str = "#", durable: bool = False):
        self.queue = f"relay-test-{uuid.uuid4().hex[:8]}"
        self.reopen()
        events_exchange(exchange)(self.channel).declare()
        # durable survives a broker stop (fault tests); exclusive dies with this connection.
        self.channel.queue_declare(self.queue, exclusive=not durable, auto_delete=False, durable=durable)
        self.channel.queue_bind(self.queue, exchange, pattern)

    def reopen(self) -> None:
        """A new connection: a fresh consumer after a broker restart."""
        self.conn = events_connection()
        self.conn.ensure_connection(max_retries=3)
        self.channel = self.conn.channel()

    def read(self, *, count: int, timeout: float = 20.0, settle: float = 0.3) -> list[Received]:
        """Messages until ``count`` arrived (plus ``settle`` s to catch duplicates) or the deadline."""
        received: list[Received] = []
        deadline = time.monotonic() + timeout
        settle_until = None
        while time.monotonic() < deadline:
            message = self.channel.basic_get(self.queue, no_ack=True)
            if message is None:
                if settle_until is not None and time.monotonic() >= settle_until:
                    break
                time.sleep(0.02)
                continue
            body = json.loads(message.body)
            received.append(
                Received(
                    event_id=message.properties["message_id"],
                    aggregate_id=body["bookingId"],
                    event_type=body["eventType"],
                    body=body,
                    headers=dict(message.properties.get("application_headers") or {}),
                    properties=dict(message.properties),
                )
            )
            if len(received) >= count and settle_until is None:
                settle_until = time.monotonic() + settle
        return received

    def close(self) -> None:
        try:
            self.channel.queue_delete(self.queue)
        finally:
            self.conn.release()


@pytest.fixture
def amqp_reader() -> Iterator[Callable[..., AmqpReader]]:
    readers: list[AmqpReader] = []

    def make(exchange: str | None = None, pattern: str = "#", durable: bool = False) -> AmqpReader:
        reader = AmqpReader(exchange=exchange or settings.EVENTS_EXCHANGE, pattern=pattern, durable=durable)
        readers.append(reader)
        return reader

    yield make
    for reader in readers:
        # a broker-stop test may have killed the connection: closing it then fails, harmlessly
        with contextlib.suppress(Exception):
            reader.close()


@pytest.fixture
def unroutable_exchange() -> Iterator[str]:
    """An exchange with no queue bound to it (every mandatory message comes back), deleted afterwards."""
    name = f"relay-unroutable-{uuid.uuid4().hex[:8]}"
    yield name
    with contextlib.suppress(Exception), events_connection() as conn:
        conn.channel().exchange_delete(name)


class KafkaReader:
    """A fresh consumer (no group) positioned at the end of every partition of the session topic."""

    def __init__(self, topic: str):
        from kafka import KafkaConsumer, TopicPartition

        self.topic = topic
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
            group_id=None,
            enable_auto_commit=False,
            consumer_timeout_ms=200,
        )
        partitions = self.consumer.partitions_for_topic(topic) or set()
        self.partitions = [TopicPartition(topic, p) for p in sorted(partitions)]
        self.consumer.assign(self.partitions)
        # Explicit offsets resolved now, before anything is published (a lazy seek_to_end could skip them).
        for partition, offset in self.consumer.end_offsets(self.partitions).items():
            self.consumer.seek(partition, offset)

    def read(self, *, event_ids: set[str], timeout: float = 30.0, settle: float = 0.5) -> list[Received]:
        received: list[Received] = []
        deadline = time.monotonic() + timeout
        settle_until = None
        while time.monotonic() < deadline:
            if settle_until is not None and time.monotonic() >= settle_until:
                break
            batches = self.consumer.poll(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    headers = {name: value.decode() for name, value in record.headers}
                    body = json.loads(record.value)
                    if body.get("eventId") not in event_ids:
                        continue
                    received.append(
                        Received(
                            event_id=headers["eventId"],
                            aggregate_id=record.key.decode(),
                            event_type=body["eventType"],
                            body=body,
                            headers=headers,
                            properties={"partition": record.partition, "offset": record.offset},
                        )
                    )
            if settle_until is None and {r.event_id for r in received} >= event_ids:
                settle_until = time.monotonic() + settle
        return received

    def close(self) -> None:
        self.consumer.close()


@pytest.fixture
def kafka_reader(kafka_topic) -> Iterator[Callable[[], KafkaReader]]:
    readers: list[KafkaReader] = []

    def make() -> KafkaReader:
        reader = KafkaReader(kafka_topic)
        readers.append(reader)
        return reader

    yield make
    for reader in readers:
        reader.close()


def assert_in_order_per_aggregate(received: list[Received], events: list[OutboxEvent]) -> None:
    """Each aggregate's events arrived in the order they were written (by first arrival)."""
    written: dict[str, list[str]] = {}
    for event in events:
        written.setdefault(event.aggregate_id, []).append(str(event.event_id))
    seen: dict[str, list[str]] = {}
    for message in received:
        ids = seen.setdefault(message.aggregate_id, [])
        if message.event_id not in ids:
            ids.append(message.event_id)
    assert seen == written


@pytest.fixture
def celery_tasks() -> Iterator[Callable[..., list[dict[str, Any]]]]:
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
