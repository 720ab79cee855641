"""Dead letters: recorded with the reason, re-driven or discarded from the admin and ``manage.py dead_letters``."""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from messaging.consumers.rabbitmq_topology import queue_name_for, rabbitmq_topology_setup
from messaging.consumers.rabbitmq_worker import rabbitmq_consume
from messaging.dead_letters import dead_letter_record, dead_letter_redrive_to_broker
from messaging.models import DeadLetter
from messaging.tests.consumer_support import (
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


def _dead_lettered_by_notifications_then_fixed(settings: Any) -> tuple[dict[str, Any], DeadLetter]:
    """A booking event without its tour name, dead-lettered by the notifications consumer over
    RabbitMQ; its stored body then fixed (the tour name filled in) as an operator would."""
    settings.EVENT_HANDLER_ROUTES = {"notifications": "rabbitmq", "availability": "kafka"}
    rabbitmq_topology_setup()
    payload = booking_payload(tourName=None)
    amqp_publish([(payload, wire_headers(payload))])
    rabbitmq_consume(max_messages=1, idle_timeout=2)
    dead = DeadLetter.objects.get()
    assert "tour_name" in dead.reason
    DeadLetter.objects.filter(pk=dead.pk).update(body=json.dumps({**payload, "tourName": "Paris City Tour"}))
    return payload, dead


@pytest.mark.django_db(transaction=True)
def test_a_rabbitmq_dead_letter_redriven_from_the_admin_is_handled(amqp_env, settings, admin_client) -> None:
    # given: a message dead-lettered because the handler needed a field that was then fixed upstream
    payload, dead = _dead_lettered_by_notifications_then_fixed(settings)
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


def _dead_letters(count: int, **fields: object) -> list[DeadLetter]:
    return [
        DeadLetter.objects.create(
            transport=fields.get("transport", "kafka"),
            source=str(fields.get("source", "tour_events.nowhere")),
            handler=str(fields.get("handler", "availability")),
            event_type="tour.booked",
            reason=f"bad record {n}",
            body=json.dumps({"bookingId": n}),
        )
        for n in range(count)
    ]


@pytest.mark.django_db
def test_dead_letters_list_shows_the_dead_ones_with_their_reason_and_filters_by_transport() -> None:
    # given two Kafka dead letters, one RabbitMQ one and one already re-driven
    kafka = _dead_letters(2)
    _dead_letters(1, transport="rabbitmq", handler="notifications")
    DeadLetter.objects.filter(pk=kafka[1].pk).update(state=DeadLetter.State.REDRIVEN)
    out = StringIO()

    # when
    call_command("dead_letters", "list", "--transport", "kafka", stdout=out)

    # then only the Kafka one still dead is listed
    text = out.getvalue()
    assert f"{kafka[0].pk:>6} dead" in text and "bad record 0" in text
    assert "bad record 1" not in text
    assert "1 of 1 shown" in text


@pytest.mark.django_db
def test_dead_letters_list_json_gives_one_object_per_line() -> None:
    (letter,) = _dead_letters(1)
    out = StringIO()
    call_command("dead_letters", "list", "--json", stdout=out)
    (row,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert (row["id"], row["state"], row["reason"]) == (letter.pk, "dead", "bad record 0")


@pytest.mark.django_db
def test_dead_letters_discard_dry_run_changes_nothing_then_discard_keeps_the_rows() -> None:
    # given two dead letters
    letters = _dead_letters(2)
    ids = [str(letter.pk) for letter in letters]
    out = StringIO()

    # when a dry run, then the real discard
    call_command("dead_letters", "discard", "--ids", *ids, "--dry-run", stdout=out)
    after_dry_run = set(DeadLetter.objects.values_list("state", flat=True))
    call_command("dead_letters", "discard", "--ids", *ids, stdout=out)

    # then
    assert "dry run: 2 dead letters would be discarded; nothing changed" in out.getvalue()
    assert after_dry_run == {"dead"}
    assert "2 dead letters discarded" in out.getvalue()
    assert set(DeadLetter.objects.values_list("state", flat=True)) == {"discarded"}


@pytest.mark.django_db
def test_dead_letters_redrive_and_discard_want_ids_or_all() -> None:
    with pytest.raises(CommandError, match="--ids or --all"):
        call_command("dead_letters", "redrive", stdout=StringIO())


@pytest.mark.django_db
def test_dead_letters_redrive_publishes_to_the_source_topic_and_reports_progress(fresh_topic) -> None:
    # given a dead letter from the test topic
    payload = booking_payload()
    dead = dead_letter_record(
        transport="kafka",
        source=fresh_topic,
        reason="boom",
        body=json.dumps(payload).encode(),
        message_key=str(payload["bookingId"]),
    )
    out = StringIO()

    # when a dry run, then the re-drive of all
    call_command("dead_letters", "redrive", "--all", "--dry-run", stdout=out)
    state_after_dry_run = DeadLetter.objects.get(pk=dead.pk).state
    call_command("dead_letters", "redrive", "--all", "--transport", "kafka", stdout=out)

    # then the dry run changed nothing, and the re-drive put the record back on its topic
    assert state_after_dry_run == "dead"
    assert "re-driven: 1/1 (" in out.getvalue()
    assert "1 dead letters re-driven, 0 failed" in out.getvalue()
    assert DeadLetter.objects.get(pk=dead.pk).state == "redriven"
    (record,) = kafka_read_all(fresh_topic, expected=1)
    assert json.loads(record.value) == payload


@pytest.mark.django_db
def test_dead_letter_page_is_read_only_pretty_prints_the_body_and_has_a_redrive_button(admin_client) -> None:
    # given a dead letter whose source cannot be reached for the re-drive
    (letter,) = _dead_letters(1, transport="rabbitmq", handler="notifications")
    url = reverse("admin:messaging_deadletter_change", args=[letter.pk])

    # when
    html = admin_client.get(url).content.decode()

    # then no Save button, the JSON body indented, a re-drive button
    operate = reverse("admin:messaging_deadletter_operate", args=[letter.pk])
    assert 'name="_save"' not in html
    assert "{\n  &quot;bookingId&quot;: 0\n}" in html
    assert f'action="{operate}"' in html and "Re-drive to the source queue / topic" in html


@pytest.mark.django_db(transaction=True)
def test_the_redrive_button_on_a_dead_letter_page_sends_it_back_to_its_queue(amqp_env, settings, admin_client) -> None:
    # given a message dead-lettered by the notifications consumer, fixed afterwards
    payload, dead = _dead_lettered_by_notifications_then_fixed(settings)

    # when the button on its page is pressed
    response = admin_client.post(reverse("admin:messaging_deadletter_operate", args=[dead.pk]))
    rabbitmq_consume(max_messages=1, idle_timeout=2)

    # then back to the page, re-driven, handled
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:messaging_deadletter_change", args=[dead.pk])
    assert DeadLetter.objects.get(pk=dead.pk).state == "redriven"
    assert Notification.objects.filter(dedup_key=payload["eventId"]).count() == 2
