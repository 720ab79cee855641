"""One booking over HTTP, followed through every process: outbox, both brokers, notification,
availability read model, and one correlation id in every process's log. Also: no email or phone
number in clear in any log line of any process."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.e2e.figures import wait_for_drain
from tests.e2e.harness import wait_until

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
        "happy_path", departure_ids=[departure_id], since=started, timeout=60, amqp=amqp_tap, kafka=kafka_tap
    )
    print(figures.json_line())
    assert (figures.lost, figures.duplicates, figures.overbooked) == (0, 0, 0), figures.details
    assert figures.delivered == {"rabbitmq": 1, "kafka": 1}
    assert figures.broker_received == {"rabbitmq": 1, "kafka": 1}
    from availability.models import DepartureAvailability

    assert DepartureAvailability.objects.get(departure_id=departure_id).seats_booked == 2

    # and the same correlation id is on log lines of the web, the worker and the kafka consumer
    def logged_by_every_process() -> bool:
        return all(
            any(r.get("correlation_id") == correlation_id for r in system.log_lines(name))
            for name in ("web", "worker", "kafka_consumer")
        )

    wait_until(logged_by_every_process, timeout=10, what="the correlation id in web, worker and consumer logs")

    # and neither the email nor the phone number appears in clear in any process's log
    for name, process in system.processes.items():
        text = process.log_text()
        assert email not in text, f"{name} logged the email in clear"
        assert phone not in text and phone[1:] not in text, f"{name} logged the phone number in clear"
