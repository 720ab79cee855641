"""The guided tour (``manage.py demo``): the journey read back by correlation id, and the banner."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from ops.selectors import booking_journey
from tests.e2e.harness import free_port


@pytest.mark.django_db
def test_the_journey_of_a_booking_is_read_back_by_its_correlation_id_step_by_step():
    # given a booking's event delivered to RabbitMQ, its email sent, Kafka still pending
    from messaging.models import OutboxDelivery, OutboxEvent, ProcessedMessage
    from notifications.models import Notification

    cid = "demo-journey-1"
    event = OutboxEvent.objects.create(
        aggregate_type="booking",
        aggregate_id="42",
        event_type="tour.booked",
        routing_key="tour.booked.standard",
        message_key="42",
        payload={},
        correlation_id=cid,
    )
    delivered_at = timezone.now() + timedelta(milliseconds=30)
    OutboxDelivery.objects.create(
        event=event, destination="rabbitmq", state="delivered", aggregate_key="b:42", delivered_at=delivered_at
    )
    OutboxDelivery.objects.create(event=event, destination="kafka", state="pending", aggregate_key="b:42")
    Notification.objects.create(
        dedup_key=str(event.event_id),
        event_type="tour.booked",
        booking_id="42",
        correlation_id=cid,
        channel=Notification.Channel.EMAIL,
        recipient="a@example.com",
        recipient_masked="a***@example.com",
        language="en",
        status=Notification.Status.SENT,
        sent_at=delivered_at,
    )
    ProcessedMessage.objects.create(handler="notifications", dedup_key="x", transport="rabbitmq", correlation_id=cid)

    # when
    steps = booking_journey(correlation_id=cid)

    # then what happened is there, what did not is None
    assert steps["booking_id"] == "42"
    assert steps["outbox"] == event.created_at
    assert steps["rabbitmq"] == delivered_at and steps["email"] == delivered_at
    assert steps["kafka"] is None and steps["sms"] is None and steps["availability"] is None


@pytest.mark.django_db
def test_an_unknown_correlation_id_has_no_step_yet():
    assert set(booking_journey(correlation_id="demo-none").values()) == {None}


def test_the_banner_prints_the_admin_credentials_that_work(settings):
    # given the development demo accounts
    settings.PRODUCTION = False
    settings.DEMO_ADMIN_USERNAME, settings.DEMO_ADMIN_PASSWORD = "boss", "boss-password"
    out = StringIO()
    # when
    call_command("demo", "--banner", stdout=out)
    # then the admin line names the admin account, the customer line the demo customer
    text = out.getvalue()
    assert "admin http://127.0.0.1:8000/admin/ (sign in as boss / boss-password)" in text
    assert f"demo customer {settings.DEMO_USERNAME} / {settings.DEMO_PASSWORD}" in text
    assert settings.FLOWER_URL in text and settings.RABBITMQ_MANAGEMENT_URL in text


def test_the_banner_promises_no_demo_account_in_production(settings):
    settings.PRODUCTION = True
    out = StringIO()
    call_command("demo", "--banner", stdout=out)
    assert "no demo accounts in production" in out.getvalue()
    assert settings.DEMO_ADMIN_PASSWORD not in out.getvalue()


def test_the_demo_says_to_start_the_system_when_nothing_answers():
    with pytest.raises(CommandError, match="make run"):
        call_command("demo", "--no-outage", "--url", f"http://127.0.0.1:{free_port()}", stdout=StringIO())


def test_the_demo_refuses_to_run_in_production(settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="development only"):
        call_command("demo", "--no-outage", stdout=StringIO())
