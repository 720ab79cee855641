"""Parallel relays on real PostgreSQL: no row published twice, order per booking kept under retries."""

from __future__ import annotations

import random
import threading
from collections import Counter

import pytest
from django.db import connection

from messaging.models import OutboxDelivery
from messaging.publishers.base import OutboundMessage, Publisher, PublishOutcome
from messaging.relay.drain import outbox_relay_drain
from messaging.relay.publisher_cache import publisher_for
from messaging.tests.conftest import (
    KAFKA,
    RABBITMQ,
    assert_in_order_per_aggregate,
    fake_booking_ids,
    record_booking_events,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)


class FlakyPublisher:
    """Refuses a random fifth of each batch without sending it; publishes the rest for real."""

    def __init__(self, inner: Publisher, seed: int):
        self.inner = inner
        self.random = random.Random(seed)

    def publish(self, messages: list[OutboundMessage]) -> PublishOutcome:
        return self.complete(self.begin(messages))

    def begin(self, messages: list[OutboundMessage]) -> object:
        refused = [m for m in messages if self.random.random() < 0.2]
        return refused, self.inner.begin([m for m in messages if m not in refused])

    def complete(self, handle: object) -> PublishOutcome:
        refused, inner = handle
        outcome = self.inner.complete(inner)
        outcome.failed.update({m.delivery_id: "injected failure" for m in refused})
        return outcome

    def close(self) -> None:
        self.inner.close()


def _run_relays(destination: str, *, relays: int) -> None:
    """``relays`` threads drain ``destination`` in small batches until nothing is pending."""
    errors: list[BaseException] = []

    def relay(seed: int) -> None:
        publisher = FlakyPublisher(publisher_for(destination), seed)
        try:
            while OutboxDelivery.objects.filter(destination=destination, state="pending").exists():
                outbox_relay_drain(destination=destination, batch_size=7, publisher=publisher, time_budget_seconds=1)
        except BaseException as exc:  # re-raised in the test thread below
            errors.append(exc)
        finally:
            publisher.close()
            connection.close()

    threads = [threading.Thread(target=relay, args=(seed,)) for seed in range(relays)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert not any(thread.is_alive() for thread in threads)


@pytest.fixture
def fast_retries(settings):
    settings.OUTBOX_BACKOFF_BASE_SECONDS = 0.005
    settings.OUTBOX_BACKOFF_MAX_SECONDS = 0.02
    settings.OUTBOX_MAX_ATTEMPTS = 1000


def test_parallel_relays_with_retries_publish_each_rabbitmq_event_once_in_order_per_booking(fast_retries, amqp_reader):
    # given 60 bookings, each booked then cancelled
    reader = amqp_reader()
    events = record_booking_events(fake_booking_ids(60), cancel=True)

    # when four relays drain RabbitMQ side by side while a fifth of every batch fails
    _run_relays(RABBITMQ, relays=4)

    # then every event arrived exactly once, and each booking's events in the order written
    received = reader.read(count=len(events))
    assert Counter(m.event_id for m in received) == Counter(str(e.event_id) for e in events)
    assert_in_order_per_aggregate(received, events)


def test_parallel_relays_with_retries_publish_each_kafka_event_once_in_order_per_booking(fast_retries, kafka_reader):
    # given 40 bookings, each booked then cancelled
    reader = kafka_reader()
    events = record_booking_events(fake_booking_ids(40), cancel=True)

    # when three relays drain Kafka side by side while a fifth of every batch fails
    _run_relays(KAFKA, relays=3)

    # then every event is on the topic exactly once, in order per booking (one booking = one partition)
    received = reader.read(event_ids={str(e.event_id) for e in events})
    assert Counter(m.event_id for m in received) == Counter(str(e.event_id) for e in events)
    assert_in_order_per_aggregate(received, events)
    wait_until(
        lambda: not OutboxDelivery.objects.filter(destination=KAFKA).exclude(state="delivered").exists(),
        timeout=5,
        what="all Kafka deliveries recorded",
    )
