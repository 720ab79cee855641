"""RabbitMQ consumer against the real broker: effectively once, DLQ with reasons, retries, correlation id."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence

import pytest
from django.core import mail

from availability.models import DepartureAvailability
from availability.tests.factories import DepartureFactory
from bookings.event_schema import TOUR_BOOKED
from messaging import registry
from messaging.consumers.rabbitmq_topology import queue_name_for, rabbitmq_topology_setup
from messaging.consumers.rabbitmq_worker import rabbitmq_consume
from messaging.envelope import Event
from messaging.models import DeadLetter, ProcessedMessage
from messaging.tests.consumer_support import (
    amqp_publish,
    amqp_queue_get_all,
    booking_payload,
    foreign_payload,
    wire_headers,
)
from notifications.models import Notification

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def departure():
    return DepartureFactory(capacity=20)


def test_rabbitmq_consumer_sends_one_email_one_sms_one_seat_change_for_an_event_delivered_three_times(
    amqp_env, celery_tasks, settings, departure, caplog
) -> None:
    # given: both handlers on RabbitMQ; our event and a foreign one, each delivered three times
    settings.EVENT_HANDLER_ROUTES = {"notifications": "rabbitmq", "availability": "rabbitmq"}
    ours = booking_payload(departureId=departure.pk, tourId=departure.tour_id, seats=3)
    foreign = foreign_payload(departureId=departure.pk, tourId=departure.tour_id, seats=1, bookingId=777)
    messages = [(ours, wire_headers(ours, "cid-ours"))] * 3 + [(foreign, {"correlationId": "cid-node"})] * 3
    rabbitmq_topology_setup()
    amqp_publish(messages)
    # when
    caplog.set_level(logging.INFO)
    handled = rabbitmq_consume(max_messages=12, idle_timeout=2)
    tasks = celery_tasks(expected=2)
    # then
    assert handled == 12
    assert sorted(m.to[0] for m in mail.outbox) == ["user@example.com", "user@example.com"]
    assert Notification.objects.filter(channel="sms", status="sent").count() == 2
    assert DepartureAvailability.objects.get(pk=departure.pk).seats_booked == 4
    assert ProcessedMessage.objects.filter(dedup_key="tour.booked:777").count() == 2
    # and the correlation id travelled into the Celery task headers and the log lines
    assert {t["headers"]["tourapp_correlation_id"] for t in tasks} == {"cid-ours", "cid-node"}
    assert {r.correlation_id for r in caplog.records if "duplicate" in r.getMessage()} >= {"cid-ours", "cid-node"}
    # and the consumer says nothing at INFO about an applied event, one line per duplicate (as on Kafka)
    about_ours = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("messaging.") and getattr(r, "correlation_id", None) == "cid-ours"
    ]
    assert about_ours == [f"skipped duplicate event {ours['eventId']}"] * 4  # two handlers, two copies each
    assert "user@example.com" not in caplog.text and "+33612345678" not in caplog.text


def test_rabbitmq_consumer_dead_letters_bad_messages_with_the_reason_and_processes_the_valid_ones(
    amqp_env, celery_tasks, settings
) -> None:
    # given: valid messages around every kind of bad one
    settings.EVENT_HANDLER_ROUTES = {"notifications": "rabbitmq", "availability": "kafka"}
    settings.EVENTS_MAX_BODY_BYTES = 4096
    first, last = booking_payload(), booking_payload()
    unknown = booking_payload(eventType="tour.exploded")
    no_email = booking_payload(userEmail=None)
    mistyped = booking_payload(seats="two")
    huge = booking_payload(tourName="x" * 5000)
    rabbitmq_topology_setup()
    amqp_publish(
        [
            (first, wire_headers(first)),
            (b"{this is not json", {}),
            (unknown, {}),  # routed as tour.booked.premium, but the body says otherwise
            (no_email, wire_headers(no_email)),
            (mistyped, wire_headers(mistyped)),
            (huge, wire_headers(huge)),
            (last, wire_headers(last)),
        ]
    )
    # when
    handled = rabbitmq_consume(max_messages=7, idle_timeout=2)
    celery_tasks(expected=2)
    # then: the consumer went on; the valid ones are sent
    assert handled == 7
    assert Notification.objects.filter(status="sent").count() == 4
    dlq = amqp_queue_get_all(f"{queue_name_for('notifications')}.dlq")
    reasons = sorted(m.properties["application_headers"]["x-error"] for m in dlq)
    assert len(reasons) == 5
    for expected in ("malformed JSON", "unknown event type", "user_email", "seats must be an integer", "too large"):
        assert any(expected in reason for reason in reasons), (expected, reasons)
    assert DeadLetter.objects.filter(transport="rabbitmq", handler="notifications").count() == 5
    # and a message rejected by its handler is recorded with its event type and id, as on Kafka
    missing = DeadLetter.objects.get(reason__contains="user_email")
    assert (missing.event_type, missing.event_id) == ("tour.booked", no_email["eventId"])
    # and nothing loops: the main queue is empty
    assert amqp_queue_get_all(queue_name_for("notifications")) == []


class Flaky:
    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.applied: list[str] = []

    def __call__(self, events: Sequence[Event]) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise RuntimeError(f"flaky failure {self.calls}")
        self.applied += [e.dedup_key for e in events]


@pytest.fixture
def flaky(settings) -> Iterator[callable]:
    def make(failures: int) -> Flaky:
        handler = Flaky(failures)
        registry.register(name="flaky", event_types=[TOUR_BOOKED], handle_batch=handler)
        settings.EVENT_HANDLER_ROUTES = {"notifications": "kafka", "availability": "kafka", "flaky": "rabbitmq"}
        return handler

    yield make
    registry.unregister("flaky")


def test_rabbitmq_consumer_retries_a_failing_handler_with_backoff_and_then_applies_it(amqp_env, flaky) -> None:
    # given: fails twice (retry ladder has two steps), then works
    handler = flaky(failures=2)
    payload = booking_payload()
    rabbitmq_topology_setup()
    amqp_publish([(payload, wire_headers(payload))])
    # when
    handled = rabbitmq_consume(max_messages=3, idle_timeout=2)
    # then
    assert handled == 3
    assert handler.applied == [payload["eventId"]]
    assert not DeadLetter.objects.exists()


def test_rabbitmq_consumer_dead_letters_after_the_bounded_retries(amqp_env, flaky) -> None:
    # given: always fails
    handler = flaky(failures=100)
    payload = booking_payload()
    rabbitmq_topology_setup()
    amqp_publish([(payload, wire_headers(payload, "cid-flaky"))])
    # when
    rabbitmq_consume(max_messages=3, idle_timeout=2)
    # then: 1 try + 2 retries, then the DLQ with the reason and the retry count
    assert handler.calls == 3
    (dead,) = amqp_queue_get_all(f"{queue_name_for('flaky')}.dlq")
    headers = dead.properties["application_headers"]
    assert "failed after 3 attempts: RuntimeError: flaky failure 3" in headers["x-error"]
    assert headers["x-retry-count"] == 2
    assert json.loads(dead.body)["eventId"] == payload["eventId"]
    row = DeadLetter.objects.get()
    assert (row.handler, row.event_id, row.correlation_id) == ("flaky", payload["eventId"], "cid-flaky")


def test_quorum_queues_get_explicit_arguments_and_the_retry_ladder_still_works(amqp_env, flaky, settings) -> None:
    # given: quorum queues (RabbitMQ 3.x and 4.x alike: delivery limit and dead-letter strategy explicit)
    settings.EVENTS_QUORUM_QUEUES = True
    handler = flaky(failures=1)
    rabbitmq_topology_setup()
    payload = booking_payload()
    amqp_publish([(payload, wire_headers(payload))])
    # when
    handled = rabbitmq_consume(max_messages=2, idle_timeout=2)
    # then: declared as quorum with the same arguments every time (a re-declare would fail otherwise)
    assert handled == 2
    assert handler.applied == [payload["eventId"]]
    assert rabbitmq_topology_setup() == [queue_name_for("flaky")]


class PoisonOnce:
    """Refuses any batch that holds the poison event; applies everything else."""

    def __init__(self, poison: str) -> None:
        self.poison = poison
        self.batches: list[list[str]] = []

    def __call__(self, events: Sequence[Event]) -> None:
        keys = [e.dedup_key for e in events]
        if self.poison in keys:
            raise RuntimeError("poison")
        self.batches.append(keys)


def test_rabbitmq_consumer_applies_a_backlog_in_batches_and_isolates_a_failing_event(amqp_env, settings) -> None:
    # given: a handler that refuses any batch holding one poison event
    good = [booking_payload() for _ in range(9)]
    poison = booking_payload()
    handler = PoisonOnce(poison=poison["eventId"])
    registry.register(name="flaky", event_types=[TOUR_BOOKED], handle_batch=handler)
    settings.EVENT_HANDLER_ROUTES = {"notifications": "kafka", "availability": "kafka", "flaky": "rabbitmq"}
    try:
        rabbitmq_topology_setup()
        # when: five good events wait in the queue
        amqp_publish([(p, wire_headers(p)) for p in good[:5]])
        first = rabbitmq_consume(max_messages=5, idle_timeout=2)
        # then: they are applied together, not one transaction each
        assert first == 5
        assert max(len(batch) for batch in handler.batches) > 1
        # when: four more wait with the poison among them (then its two retries)
        amqp_publish([(p, wire_headers(p)) for p in [*good[5:7], poison, *good[7:]]])
        second = rabbitmq_consume(max_messages=7, idle_timeout=2)
    finally:
        registry.unregister("flaky")
    # then: the batch that failed is handled one by one: every good event applied exactly once...
    assert second == 7
    applied = [key for batch in handler.batches for key in batch]
    assert sorted(applied) == sorted(p["eventId"] for p in good)
    # ...and only the poison went down the retry ladder, into the DLQ; nothing is left behind
    (dead,) = amqp_queue_get_all(f"{queue_name_for('flaky')}.dlq")
    assert json.loads(dead.body)["eventId"] == poison["eventId"]
    assert "poison" in dead.properties["application_headers"]["x-error"]
    assert amqp_queue_get_all(queue_name_for("flaky")) == []
