"""The relay against the real PostgreSQL, RabbitMQ and Kafka: delivery, wire contract, order, failures."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from messaging.models import OutboxDelivery
from messaging.publishers.rabbitmq import AmqpPublisher
from messaging.relay.batch import outbox_relay_batch
from messaging.relay.drain import outbox_relay_drain
from messaging.relay.pause import outbox_destination_is_paused
from messaging.services import outbox_requeue_dead
from messaging.tests.conftest import (
    KAFKA,
    RABBITMQ,
    assert_in_order_per_aggregate,
    fake_booking_ids,
    record_booking_events,
)

pytestmark = pytest.mark.django_db


def _deliveries(destination: str):
    return OutboxDelivery.objects.filter(destination=destination).order_by("id")


def test_relay_delivers_every_event_to_rabbitmq_with_the_wire_contract_properties(amqp_reader):
    # given a fresh queue on the events exchange and three booked events
    reader = amqp_reader()
    events = record_booking_events(fake_booking_ids(3))

    # when the relay drains the RabbitMQ destination
    result = outbox_relay_drain(destination=RABBITMQ)

    # then each event arrived once, persistent, with the contract's properties and headers
    assert result.delivered == 3
    received = reader.read(count=3)
    assert sorted(m.event_id for m in received) == sorted(str(e.event_id) for e in events)
    first = next(m for m in received if m.event_id == str(events[0].event_id))
    assert first.properties["delivery_mode"] == 2
    assert first.properties["content_type"] == "application/json"
    assert first.properties["correlation_id"] == events[0].correlation_id
    assert first.headers == {
        "eventType": "tour.booked",
        "eventId": str(events[0].event_id),
        "correlationId": events[0].correlation_id,
    }
    assert first.body["bookingId"] == events[0].aggregate_id
    assert first.body["totalPrice"] == "199.99"
    assert set(_deliveries(RABBITMQ).values_list("state", flat=True)) == {"delivered"}
    assert set(_deliveries(KAFKA).values_list("state", flat=True)) == {"pending"}


def test_relay_delivers_every_event_to_kafka_keyed_by_booking_with_headers(kafka_reader):
    # given a fresh Kafka reader and three booked events
    reader = kafka_reader()
    events = record_booking_events(fake_booking_ids(3))

    # when the relay drains the Kafka destination
    result = outbox_relay_drain(destination=KAFKA)

    # then each event is on the topic once, keyed by booking id, with the contract's headers
    assert result.delivered == 3
    received = reader.read(event_ids={str(e.event_id) for e in events})
    assert len(received) == 3
    by_id = {m.event_id: m for m in received}
    for event in events:
        message = by_id[str(event.event_id)]
        assert message.aggregate_id == event.aggregate_id
        assert message.headers == {
            "eventType": "tour.booked",
            "eventId": str(event.event_id),
            "correlationId": event.correlation_id,
        }
    assert set(_deliveries(KAFKA).values_list("state", flat=True)) == {"delivered"}


def test_relay_publishes_a_later_event_of_a_booking_only_after_the_earlier_one_is_confirmed(amqp_reader):
    # given booked + cancelled for two bookings
    reader = amqp_reader()
    events = record_booking_events(fake_booking_ids(2), cancel=True)

    # when one batch runs
    first = outbox_relay_batch(destination=RABBITMQ)

    # then only the heads (the two booked events) were claimed; the drain then sends the rest in order
    assert first.claimed == 2
    assert outbox_relay_drain(destination=RABBITMQ).delivered == 2
    received = reader.read(count=4)
    assert len(received) == 4
    assert_in_order_per_aggregate(received, events)


def test_unroutable_message_is_not_marked_delivered_and_counts_an_attempt(unroutable_exchange):
    # given an exchange with no queue bound to it
    publisher = AmqpPublisher(exchange=unroutable_exchange)
    (event,) = record_booking_events(fake_booking_ids(1))
    before = timezone.now()

    # when the relay publishes to it (the broker confirms, but returns the message as unroutable)
    result = outbox_relay_batch(destination=RABBITMQ, publisher=publisher)
    publisher.close()

    # then the delivery stays pending with one attempt, the error kept, and a backoff in the future
    assert (result.delivered, result.failed) == (0, 1)
    delivery = OutboxDelivery.objects.get(event=event, destination=RABBITMQ)
    assert delivery.state == "pending"
    assert delivery.attempts == 1
    assert "unroutable" in delivery.last_error
    assert delivery.next_attempt_at > before + timedelta(seconds=1)


def test_delivery_becomes_dead_after_max_attempts_blocks_its_booking_and_requeue_delivers_in_order(
    settings, amqp_reader, unroutable_exchange
):
    # given two bookings (booked + cancelled each) and a broker that refuses every message
    settings.OUTBOX_MAX_ATTEMPTS = 2
    reader = amqp_reader()
    blocked_id, free_id = fake_booking_ids(2)
    events = record_booking_events([blocked_id], cancel=True)
    failing = AmqpPublisher(exchange=unroutable_exchange)

    # when the relay tries twice (each backoff forced to be over)
    for _ in range(2):
        outbox_relay_batch(destination=RABBITMQ, publisher=failing)
        _deliveries(RABBITMQ).filter(state="pending").update(next_attempt_at=None)
    failing.close()
    head = _deliveries(RABBITMQ).get(event=events[0])

    # then the head is dead, and the booking's later event is held back while another booking flows
    assert (head.state, head.attempts) == ("dead", 2)
    others = record_booking_events([free_id])
    assert outbox_relay_drain(destination=RABBITMQ).delivered == 1
    assert _deliveries(RABBITMQ).get(event=events[1]).state == "pending"

    # when the dead row is requeued by event type
    requeued = outbox_requeue_dead(event_type="tour.booked")

    # then both events of the blocked booking are delivered, in order
    assert requeued == 1
    assert outbox_relay_drain(destination=RABBITMQ).delivered == 2
    received = reader.read(count=3)
    assert_in_order_per_aggregate(received, events + others)


def test_unreachable_rabbitmq_defers_without_counting_attempts_hides_credentials_and_spares_kafka(
    settings, kafka_reader
):
    # given RabbitMQ unreachable (a closed port, with a password in the URL)
    settings.EVENTS_AMQP_URL = "amqp://tourapp:s3cret-pw@127.0.0.1:1/tourapp"
    reader = kafka_reader()
    events = record_booking_events(fake_booking_ids(2))

    # when both destinations are drained
    rabbit = outbox_relay_drain(destination=RABBITMQ)
    kafka = outbox_relay_drain(destination=KAFKA)

    # then RabbitMQ rows are deferred with no attempt counted and the destination is paused ...
    assert rabbit.paused and rabbit.deferred == 2 and rabbit.delivered == 0
    assert outbox_destination_is_paused(destination=RABBITMQ)
    for delivery in _deliveries(RABBITMQ):
        assert (delivery.state, delivery.attempts) == ("pending", 0)
        assert delivery.next_attempt_at > timezone.now()
        assert "unavailable" in delivery.last_error
        assert "s3cret" not in delivery.last_error
    # ... while Kafka delivered everything
    assert kafka.delivered == 2
    assert len(reader.read(event_ids={str(e.event_id) for e in events})) == 2


def test_unreachable_kafka_defers_without_counting_attempts(settings):
    # given Kafka unreachable
    settings.KAFKA_BOOTSTRAP_SERVERS = ["127.0.0.1:1"]
    record_booking_events(fake_booking_ids(2))

    # when the Kafka destination is drained
    result = outbox_relay_drain(destination=KAFKA)

    # then its rows are deferred, no attempt counted
    assert result.paused and result.deferred == 2
    assert {(d.state, d.attempts) for d in _deliveries(KAFKA)} == {("pending", 0)}
