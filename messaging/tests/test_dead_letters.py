"""Dead letters: recorded with the reason, re-driven to their source from the admin."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from messaging.consumers.rabbitmq import queue_name_for, rabbitmq_consume, rabbitmq_topology_setup
from messaging.dead_letters import dead_letter_record, dead_letter_redrive_to_broker
from messaging.models import DeadLetter
from messaging.tests.consumer_support import (
    _amqp_env_fixture,  # noqa: F401 - fixture "amqp_env"
    _fresh_topic_fixture,  # noqa: F401 - fixture "fresh_topic"
    amqp_publish,
    booking_payload,
    kafka_read_all,
    wire_headers,
)
from notifications.models import Notification


@pytest.mark.django_db
def test_dead_letter_record_keeps_broker_headers_as_json() -> None:
    dead = dead_letter_record(
        transport="rabbitmq", source="q", reason="bad", body=b"\xffraw", headers={"x-death": [{"a": b"b"}], "n": 1}
    )
    dead.refresh_from_db()
    assert dead.headers["n"] == 1
    assert dead.body.endswith("raw")


@pytest.mark.django_db(transaction=True)
def test_a_rabbitmq_dead_letter_redriven_from_the_admin_is_handled(amqp_env, settings, admin_client) -> None:
    # given: a message dead-lettered because the handler needed a field that was then fixed upstream
    settings.EVENT_HANDLER_ROUTES = {"notifications": "rabbitmq", "availability": "kafka"}
    rabbitmq_topology_setup()
    payload = booking_payload(tourName=None)
    amqp_publish([(payload, wire_headers(payload))])
    rabbitmq_consume(max_messages=1, idle_timeout=2)
    dead = DeadLetter.objects.get()
    assert "tour_name" in dead.reason
    DeadLetter.objects.filter(pk=dead.pk).update(body=json.dumps({**payload, "tourName": "Paris City Tour"}))
    # when
    response = admin_client.post(
        reverse("admin:messaging_deadletter_changelist"), {"action": "redrive", "_selected_action": [dead.pk]}
    )
    rabbitmq_consume(max_messages=1, idle_timeout=2)
    # then
    assert response.status_code == 302
    dead.refresh_from_db()
    assert dead.state == "redriven"
    assert Notification.objects.filter(dedup_key=payload["eventId"]).count() == 2
    assert queue_name_for("notifications") == dead.source
    assert dead_letter_redrive_to_broker(dead_letter_id=dead.pk) is False  # only once


@pytest.mark.django_db
def test_a_kafka_dead_letter_is_redriven_to_its_topic(fresh_topic) -> None:
    payload = booking_payload()
    dead = dead_letter_record(
        transport="kafka",
        source=fresh_topic,
        reason="boom",
        body=json.dumps(payload).encode(),
        headers={"eventType": "tour.booked", "error": "boom", "source-offset": "3"},
        message_key=str(payload["bookingId"]),
    )
    assert dead_letter_redrive_to_broker(dead_letter_id=dead.pk) is True
    (record,) = kafka_read_all(fresh_topic, expected=1)
    assert json.loads(record.value) == payload
    assert dict(record.headers) == {"eventType": b"tour.booked"}
