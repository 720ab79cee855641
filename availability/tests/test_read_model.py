"""Availability read model: applied from events, idempotent, rebuilt from the Kafka log."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.utils import timezone

from availability.models import Departure, DepartureAvailability
from availability.read_model import (
    HANDLER_NAME,
    ReadModelRowVanished,
    UnknownDeparture,
    availability_read_model_reset,
    departure_availability_apply,
    seats_left_by_departure,
)
from availability.tests.factories import DepartureFactory
from messaging.consumers.kafka import KafkaEventConsumer, kafka_consume
from messaging.envelope import event_parse
from messaging.inbox import inbox_process
from messaging.models import ProcessedMessage
from messaging.registry import handler_get
from messaging.tests.consumer_support import booking_payload, kafka_produce, wire_headers
from tests.support.waiting import wait_until


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


@pytest.mark.django_db
def test_every_update_of_a_departures_availability_moves_updated_at() -> None:
    # given: a row last changed an hour ago
    departure = DepartureFactory(capacity=10)
    departure_availability_apply(events=[_event(departureId=departure.pk, seats=1)])
    an_hour_ago = timezone.now() - timedelta(hours=1)
    DepartureAvailability.objects.filter(pk=departure.pk).update(updated_at=an_hour_ago)
    # when
    departure_availability_apply(events=[_event(departureId=departure.pk, seats=2)])
    # then
    row = DepartureAvailability.objects.get(pk=departure.pk)
    assert row.seats_booked == 3
    assert row.updated_at > an_hour_ago + timedelta(minutes=59)


def _backend_pid() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _waiting_on_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # fresh activity figures inside a transaction
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
        return bool(row) and row[0] == "Lock"


@pytest.mark.django_db(transaction=True)
def test_a_live_batch_whose_row_a_concurrent_reset_deleted_rolls_back_and_is_applied_on_retry() -> None:
    # given: a departure's row in the read model, and a live batch about to add 2 seats to it
    handler = handler_get(HANDLER_NAME)
    departure = DepartureFactory(capacity=10)
    inbox_process(handler=handler, events=[_event(departureId=departure.pk, seats=1)], transport="kafka")
    live_event = _event(departureId=departure.pk, seats=2)
    live_pid = _backend_pid()
    deleted = threading.Event()
    errors: list[BaseException] = []

    def reset_committing_while_the_live_update_waits() -> None:
        # the rebuild's reset, holding its deletes until the live batch (which still saw the
        # row) waits for that row's lock; then it commits
        try:
            with transaction.atomic():
                availability_read_model_reset()
                deleted.set()
                wait_until(lambda: _waiting_on_a_lock(live_pid), timeout=30, what="the live update to wait")
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            deleted.set()
            connection.close()

    reset = threading.Thread(target=reset_committing_while_the_live_update_waits, daemon=True)
    reset.start()
    assert deleted.wait(timeout=30)
    # when: the live batch runs while the reset deletes its row
    try:
        with pytest.raises(ReadModelRowVanished):
            inbox_process(handler=handler, events=[live_event], transport="kafka")
    finally:
        reset.join(timeout=30)
    # then: the batch rolled back entirely (no inbox row left for the replay to skip)...
    assert errors == []
    assert not ProcessedMessage.objects.filter(handler=HANDLER_NAME, dedup_key=live_event.dedup_key).exists()
    # ...and its retry applies it to the fresh model
    result = inbox_process(handler=handler, events=[live_event], transport="kafka")
    assert result.applied == [live_event]
    assert DepartureAvailability.objects.get(pk=departure.pk).seats_booked == 2


@pytest.mark.django_db(transaction=True)
def test_a_rebuild_while_events_flow_ends_with_every_event_applied_once(fresh_topic, settings) -> None:
    # given: a live consumer applying small batches, and events still being produced
    settings.EVENT_HANDLER_ROUTES = {"notifications": "rabbitmq", "availability": "kafka"}
    settings.KAFKA_CONSUMER_MAX_RECORDS = 5
    departures = [DepartureFactory(capacity=1000) for _ in range(3)]
    payloads = [booking_payload(departureId=departures[n % 3].pk, seats=1 + n % 2) for n in range(240)]
    expected = {d.pk: sum(p["seats"] for p in payloads if p["departureId"] == d.pk) for d in departures}
    live = KafkaEventConsumer(handlers=[handler_get(HANDLER_NAME)])
    errors: list[BaseException] = []

    def in_thread(work):
        def run() -> None:
            try:
                work()
            except BaseException as exc:  # reported by the test
                errors.append(exc)
            finally:
                connection.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        return thread

    def produce_in_bursts() -> None:
        for start in range(0, len(payloads), 10):
            kafka_produce(fresh_topic, [(p, wire_headers(p)) for p in payloads[start : start + 10]])
            time.sleep(0.02)  # pacing, so the rebuild overlaps live traffic (nothing waits on it)

    live_thread = in_thread(live.run)
    producer = in_thread(produce_in_bursts)
    try:
        wait_until(lambda: live.stats.applied >= 20, timeout=60, what="live traffic")
        # when: the read model is rebuilt while the events flow
        call_command("availability_rebuild", idle_timeout=10)
        producer.join(timeout=120)
        # then: once the live consumer caught up, every event counts exactly once
        wait_until(
            lambda: ProcessedMessage.objects.filter(handler=HANDLER_NAME).count() == len(payloads),
            timeout=60,
            what="every event applied after the rebuild",
        )
    finally:
        live.stop()
        live_thread.join(timeout=30)
        producer.join(timeout=30)
    assert errors == []
    booked = dict(DepartureAvailability.objects.filter(pk__in=expected).values_list("pk", "seats_booked"))
    assert booked == expected
