"""One booking over HTTP, followed through every process: outbox, both brokers, notification,
availability read model, and one correlation id in every process's log. Also: no email or phone
number in clear in any log line of any process."""

from __future__ import annotations

import json
import random
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.e2e.figures import wait_for_drain
from tests.e2e.harness import fire_bookings
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_booking_made_over_http_reaches_both_brokers_and_every_side_effect_with_one_correlation_id(
    system, make_departures, amqp_tap, kafka_tap
):
    # given a new user who registered and got a token over HTTP
    name = f"alice-{uuid.uuid4().hex[:8]}"
    email, phone = f"{name}@example.com", "+33612345678"
    registered = system.request(
        "POST", "/api/auth/register/", body={"username": name, "email": email, "password": "s3cret-Passw0rd!"}
    )
    assert registered.status == 201, registered.body
    token = system.request("POST", "/api/auth/token/", body={"username": name, "password": "s3cret-Passw0rd!"}).json()[
        "token"
    ]
    (departure_id,) = make_departures(1, capacity=20)
    correlation_id = f"e2e-{uuid.uuid4().hex}"

    # when they book two premium seats
    started = time.monotonic()
    created = system.request(
        "POST",
        "/api/bookings/",
        token=token,
        body={"departure_id": departure_id, "seats": 2, "tier": "premium", "contact_phone": phone},
        headers={"X-Correlation-ID": correlation_id},
    )

    # then the API answers at once and shows the booking
    assert created.status == 201, created.body
    assert created.headers["x-correlation-id"] == correlation_id
    booking = created.json()
    shown = system.request("GET", f"/api/bookings/{booking['id']}/", token=token)
    assert shown.status == 200
    assert shown.json()["id"] == booking["id"] and shown.json()["seats"] == 2
    # and the event reaches RabbitMQ and Kafka, one notification is sent, the read model has the seats
    figures = wait_for_drain(
        "happy_path",
        departure_ids=[departure_id],
        since=started,
        timeout=60,
        sends=system.sends_path,
        amqp=amqp_tap,
        kafka=kafka_tap,
    )
    print(figures.json_line())
    assert (figures.lost, figures.duplicates, figures.overbooked) == (0, 0, 0), figures.details
    assert figures.delivered == {"rabbitmq": 1, "kafka": 1}
    assert figures.broker_received == {"rabbitmq": 1, "kafka": 1}
    from availability.models import DepartureAvailability

    assert DepartureAvailability.objects.get(departure_id=departure_id).seats_booked == 2

    # and the same correlation id is on log lines of the web, the worker and the kafka consumer
    def processes_without_it() -> list[str]:
        return [
            name
            for name in ("web", "worker", "kafka_consumer")
            if not any(r.get("correlation_id") == correlation_id for r in system.log_lines(name))
        ]

    try:
        wait_until(lambda: not processes_without_it(), timeout=10, what="the correlation id in every process log")
    except AssertionError:
        pytest.fail(f"no log line with correlation id {correlation_id} from: {processes_without_it()}")

    # and neither the email nor the phone number appears in clear in any process's log
    for name, process in system.processes.items():
        text = process.log_text()
        assert email not in text, f"{name} logged the email in clear"
        assert phone not in text and phone[1:] not in text, f"{name} logged the phone number in clear"


def test_many_clients_racing_for_few_seats_over_http_sell_exactly_the_capacity(system, make_users, make_departures):
    # given 24 users and a departure with 5 seats
    tokens = make_users(24)
    (departure_id,) = make_departures(1, capacity=5)

    # when they all book one seat at once
    burst = fire_bookings(system.base_url, tokens=tokens, departure_ids=[departure_id], count=24, clients=24)

    # then exactly 5 bookings succeed, the others get 409, and the seats add up
    from availability.models import Departure
    from bookings.models import Booking

    assert burst.status_counts() == {201: 5, 409: 19}
    departure = Departure.objects.get(id=departure_id)
    assert departure.seats_reserved == 5 == Booking.objects.filter(departure_id=departure_id).count()


def test_the_same_idempotency_key_replayed_concurrently_makes_one_booking(system, make_users, make_departures):
    # given one user and a departure
    (token,) = make_users(1)
    (departure_id,) = make_departures(1, capacity=50)
    key = f"idem-{uuid.uuid4()}"
    body = {"departure_id": departure_id, "seats": 2, "tier": "standard"}

    # when the same request with the same Idempotency-Key is sent 12 times at once
    with ThreadPoolExecutor(max_workers=12) as pool:
        responses = list(
            pool.map(
                lambda _: system.request(
                    "POST", "/api/bookings/", token=token, body=body, headers={"Idempotency-Key": key}
                ),
                range(12),
            )
        )

    # then one booking exists, every answer names it, and only 2 seats are taken
    from availability.models import Departure
    from bookings.models import Booking

    assert {r.status for r in responses} <= {200, 201}, [(r.status, r.body) for r in responses]
    assert sum(r.status == 201 for r in responses) == 1
    assert len({r.json()["id"] for r in responses}) == 1
    assert Booking.objects.filter(departure_id=departure_id).count() == 1
    assert Departure.objects.get(id=departure_id).seats_reserved == 2


def _foreign_message(*, booking_id: int, departure_id: int, email: str) -> dict:
    """What the lesson's Node.js service sends: no eventId, a number for totalPrice."""
    return {
        "eventType": "tour.booked",
        "bookingId": booking_id,
        "tourId": 1,
        "departureId": departure_id,
        "userId": 1,
        "bookingDate": "2026-11-27T10:00:00.000Z",
        "status": "confirmed",
        "seats": 1,
        "tier": "standard",
        "totalPrice": 199.99,
        "currency": "USD",
        "userEmail": email,
        "phone": "+33600000001",
        "tourName": "Paris City Tour",
    }


def test_poison_and_foreign_messages_on_both_transports_are_dead_lettered_or_handled_without_a_crash_loop(
    system, make_users, make_departures
):
    from django.conf import settings
    from kafka import KafkaProducer
    from kombu import Exchange

    from availability.models import DepartureAvailability
    from messaging.amqp import events_connection
    from messaging.models import DeadLetter
    from notifications.models import Notification

    # given a departure, a user, and a marker carried by every bad message
    (token,) = make_users(1)
    (departure_id,) = make_departures(1, capacity=50)
    marker = f"poison-{uuid.uuid4().hex}"
    poison = [
        f"not json at all {marker}".encode(),
        json.dumps({"eventId": str(uuid.uuid4()), "eventType": "tour.exploded", "bookingId": marker}).encode(),
        json.dumps({"eventId": str(uuid.uuid4()), "eventType": "tour.booked", "note": marker}).encode(),
        json.dumps(
            {"eventId": str(uuid.uuid4()), "eventType": "tour.booked", "bookingId": marker, "seats": "many"}
        ).encode(),
    ]
    foreign_ids = {"rabbitmq": 900_000_000 + random.randrange(10**6), "kafka": 910_000_000 + random.randrange(10**6)}
    pids = {name: process.pid for name, process in system.processes.items()}

    # when valid bookings are made around bad and foreign messages sent on both transports
    valid = [
        system.request(
            "POST",
            "/api/bookings/",
            token=token,
            body={"departure_id": departure_id, "seats": 1, "tier": "standard", "contact_phone": "+33600000002"},
        )
    ]
    with events_connection(transport_options={"confirm_publish": True}) as conn:
        producer = conn.Producer(conn.channel())
        exchange = Exchange(system.exchange, type="topic", durable=True)
        for body in poison:
            producer.publish(
                body, exchange=exchange, routing_key="tour.booked.standard", content_type="application/json"
            )
        foreign = _foreign_message(
            booking_id=foreign_ids["rabbitmq"], departure_id=departure_id, email="node@example.com"
        )
        producer.publish(
            json.dumps(foreign).encode(),
            exchange=exchange,
            routing_key="tour.booked.standard",
            content_type="application/json",
            headers={"correlationId": f"node-{marker}"},
        )
    kafka = KafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, acks="all")
    for body in poison:
        kafka.send(system.topic, key=marker.encode(), value=body)
    foreign = _foreign_message(booking_id=foreign_ids["kafka"], departure_id=departure_id, email="node@example.com")
    kafka.send(system.topic, key=str(foreign_ids["kafka"]).encode(), value=json.dumps(foreign).encode())
    kafka.flush(timeout=30)
    kafka.close()
    valid.append(
        system.request(
            "POST",
            "/api/bookings/",
            token=token,
            body={"departure_id": departure_id, "seats": 1, "tier": "premium", "contact_phone": "+33600000003"},
        )
    )
    assert [r.status for r in valid] == [201, 201]

    # then every bad message is dead-lettered with a reason, once, on each transport
    def dead_letters() -> dict[str, int]:
        # The payments consumer has a queue and DLQ of its own on RabbitMQ: counted apart, in its tests.
        rows = DeadLetter.objects.filter(body__contains=marker).exclude(handler="payments")
        assert all(row.reason for row in rows)
        return {t: rows.filter(transport=t).count() for t in ("rabbitmq", "kafka")}

    wait_until(lambda: dead_letters() == {"rabbitmq": 4, "kafka": 4}, timeout=60, what="4 dead letters per transport")
    # and the brokers' DLQs hold them
    with events_connection() as conn:
        dlq = f"{system.queue_prefix}notifications.tour_events.dlq"
        assert conn.channel().queue_declare(queue=dlq, passive=True).message_count >= 4
    assert _kafka_values_containing(system.dlq_topic, marker) == 4
    # and the valid and foreign messages were each handled once
    wait_until(
        lambda: Notification.objects.filter(
            booking_id__in=[str(r.json()["id"]) for r in valid], event_type="tour.booked", status="sent"
        ).count()
        == 4,
        timeout=60,
        what="email + SMS for both valid bookings",
    )
    wait_until(
        lambda: Notification.objects.filter(booking_id=str(foreign_ids["rabbitmq"]), status="sent").count() == 2,
        timeout=30,
        what="email + SMS for the foreign RabbitMQ message",
    )
    wait_until(
        lambda: DepartureAvailability.objects.filter(departure_id=departure_id, seats_booked=3).exists(),
        timeout=30,
        what="2 valid + 1 foreign Kafka seat in the read model",
    )
    # and no consumer crashed or restarted
    assert all(p.alive() for p in system.processes.values())
    assert {name: process.pid for name, process in system.processes.items()} == pids


def _kafka_values_containing(topic: str, marker: str) -> int:
    from django.conf import settings
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        found, done = 0, {p: end[p] == 0 for p in partitions}
        deadline = time.monotonic() + 20
        while not all(done.values()) and time.monotonic() < deadline:
            for partition, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    found += marker.encode() in (record.value or b"")
                    done[partition] = record.offset + 1 >= end[partition]
        return found
    finally:
        consumer.close()
