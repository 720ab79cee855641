"""Availability read model: applied from events, idempotent, rebuilt from the Kafka log."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from availability.models import Departure, DepartureAvailability
from availability.read_model import UnknownDeparture, departure_availability_apply, seats_left_by_departure
from availability.tests.factories import DepartureFactory
from messaging.consumers.kafka import kafka_consume
from messaging.envelope import event_parse
from messaging.models import ProcessedMessage
from messaging.tests.consumer_support import (
    _fresh_topic_fixture,  # noqa: F401 - fixture "fresh_topic"
    booking_payload,
    kafka_produce,
    wire_headers,
)


def _event(**overrides):
    return event_parse(body=json.dumps(booking_payload(**overrides)))


@pytest.mark.django_db
def test_booked_adds_and_cancelled_removes_seats_with_capacity_read_from_the_departure() -> None:
    # given
    departure = DepartureFactory(capacity=12)
    # when
    departure_availability_apply(
        events=[
            _event(departureId=departure.pk, seats=3),
            _event(departureId=departure.pk, seats=4),
            _event(eventType="tour.cancelled", departureId=departure.pk, seats=3),
        ]
    )
    # then
    row = DepartureAvailability.objects.get(pk=departure.pk)
    assert (row.capacity, row.tour_id, row.seats_booked, row.seats_left) == (12, departure.tour_id, 4, 8)
    assert seats_left_by_departure(departure_ids=[departure.pk, 999999]) == {departure.pk: 8}


@pytest.mark.django_db
def test_the_tours_api_serves_the_projected_seats_left_in_one_query(django_assert_max_num_queries) -> None:
    from rest_framework.test import APIClient

    # given: two tours, one departure with events applied
    departure, other = DepartureFactory(capacity=10), DepartureFactory(capacity=5)
    departure_availability_apply(events=[_event(departureId=departure.pk, seats=4)])
    # when
    with django_assert_max_num_queries(4):
        listing = APIClient().get("/api/tours/").json()
    detail = APIClient().get(f"/api/tours/{departure.tour_id}/").json()
    # then
    projected = {d["id"]: d["seats_left_projected"] for t in listing["results"] for d in t["departures"]}
    assert projected == {departure.pk: 6, other.pk: None}
    assert detail["departures"][0]["seats_left_projected"] == 6


@pytest.mark.django_db
def test_an_event_for_an_unknown_departure_is_refused() -> None:
    with pytest.raises(UnknownDeparture):
        departure_availability_apply(events=[_event(departureId=987654321, seats=1)])


@pytest.mark.django_db(transaction=True)
def test_availability_rebuild_replays_the_topic_to_exactly_what_the_departures_say(fresh_topic, settings) -> None:
    # given: departures whose reservations were made by these events, a live consumer that applied them...
    settings.EVENT_HANDLER_ROUTES = {"notifications": "rabbitmq", "availability": "kafka"}
    first, second = DepartureFactory(capacity=20), DepartureFactory(capacity=8)
    events = [booking_payload(departureId=first.pk, seats=2) for _ in range(4)]
    events += [booking_payload(departureId=second.pk, seats=3) for _ in range(2)]
    events += [booking_payload(eventType="tour.cancelled", departureId=first.pk, seats=2)]
    Departure.objects.filter(pk=first.pk).update(seats_reserved=6)
    Departure.objects.filter(pk=second.pk).update(seats_reserved=6)
    kafka_produce(fresh_topic, [(p, wire_headers(p)) for p in events])
    kafka_consume(until_caught_up=True, idle_timeout=20)
    ProcessedMessage.objects.create(handler="notifications", dedup_key="keep-me", transport="rabbitmq")
    # ...and then the read model was damaged
    DepartureAvailability.objects.filter(pk=first.pk).update(seats_booked=17)
    DepartureAvailability.objects.filter(pk=second.pk).delete()
    # when
    call_command("availability_rebuild", idle_timeout=20)
    # then
    for departure in Departure.objects.filter(pk__in=[first.pk, second.pk]):
        assert DepartureAvailability.objects.get(pk=departure.pk).seats_left == departure.seats_left
    assert ProcessedMessage.objects.filter(handler="availability").count() == len(events)
    assert ProcessedMessage.objects.filter(handler="notifications", dedup_key="keep-me").exists()
