"""The payments consumer on the real RabbitMQ: its own durable queue and DLQ, effectively once."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from django.conf import settings

from availability.tests.factories import DepartureFactory
from bookings.tests.factories import UserFactory, booking_create
from messaging.amqp import events_connection
from messaging.consumers.rabbitmq_topology import queue_name_for, rabbitmq_topology_setup
from messaging.consumers.rabbitmq_worker import rabbitmq_consume
from messaging.models import DeadLetter, OutboxEvent
from messaging.tests.consumer_support import amqp_publish
from payments.handlers import HANDLER_NAME
from payments.models import Payment

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def payments_queues(amqp_env, settings) -> Iterator[str]:
    settings.EVENT_HANDLER_ROUTES = {HANDLER_NAME: "rabbitmq"}
    rabbitmq_topology_setup(handler_names=[HANDLER_NAME])
    main = queue_name_for(HANDLER_NAME)
    yield main
    with events_connection() as connection, contextlib.suppress(Exception):
        channel = connection.channel()
        for delay in settings.EVENTS_RETRY_DELAYS:
            channel.queue_delete(f"{main}.retry.{round(delay * 1000)}ms")
        channel.queue_delete(f"{main}.dlq")
        channel.queue_delete(main)


def test_payments_consumer_creates_one_charge_for_a_tour_booked_delivered_three_times(payments_queues) -> None:
    # given: a real booking's tour.booked, published three times as the relay would (at-least-once)
    booking = booking_create(user=UserFactory(), departure_id=DepartureFactory().pk, seats=2, tier="premium")
    row = OutboxEvent.objects.get(aggregate_id=str(booking.pk), event_type="tour.booked")
    amqp_publish([(row.payload, row.headers)] * 3, routing_key=row.routing_key)

    # when
    handled = rabbitmq_consume(handler_names=[HANDLER_NAME], max_messages=3, idle_timeout=2)

    # then
    assert handled == 3
    assert payments_queues == f"{settings.EVENTS_QUEUE_PREFIX}payments.tour_events"
    charge = Payment.objects.get(booking=booking)
    assert (charge.kind, charge.state, charge.amount_minor) == ("charge", "pending", 59997)
    assert charge.correlation_id == row.correlation_id


def test_a_poison_payment_message_goes_to_the_payments_dlq_and_the_next_one_is_applied(payments_queues) -> None:
    # given: garbage, then a valid event
    booking = booking_create(user=UserFactory(), departure_id=DepartureFactory().pk, seats=1, tier="standard")
    row = OutboxEvent.objects.get(aggregate_id=str(booking.pk), event_type="tour.booked")
    amqp_publish([(b"{not json", {"eventType": "tour.booked"})], routing_key="tour.booked.standard")
    amqp_publish([(row.payload, row.headers)], routing_key=row.routing_key)

    # when
    handled = rabbitmq_consume(handler_names=[HANDLER_NAME], max_messages=2, idle_timeout=2)

    # then
    assert handled == 2
    dead = DeadLetter.objects.get(handler=HANDLER_NAME)
    assert dead.source == payments_queues and "malformed JSON" in dead.reason
    assert Payment.objects.filter(booking=booking).count() == 1
