"""Notifications admin: masked recipient only, status filter, resend action."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from messaging.envelope import event_parse
from messaging.tests.consumer_support import booking_payload
from notifications.models import Notification
from notifications.services import notifications_create_for_events

pytestmark = pytest.mark.django_db


def test_the_notification_admin_shows_masked_recipients_only(admin_client, django_capture_on_commit_callbacks) -> None:
    # given
    with django_capture_on_commit_callbacks(execute=False):
        notifications_create_for_events(events=[event_parse(body=json.dumps(booking_payload()))])
    email = Notification.objects.get(channel="email")
    # when
    listing = admin_client.get(reverse("admin:notifications_notification_changelist") + "?status__exact=pending")
    detail = admin_client.get(reverse("admin:notifications_notification_change", args=[email.pk]))
    # then
    assert listing.status_code == detail.status_code == 200
    for page in (listing, detail):
        html = page.content.decode()
        assert "u***@example.com" in html
        assert "user@example.com" not in html and "+33612345678" not in html


def test_the_resend_action_queues_a_failed_notification(admin_client, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        notifications_create_for_events(events=[event_parse(body=json.dumps(booking_payload(phone=None)))])
    Notification.objects.update(status="failed")
    email = Notification.objects.get()
    with django_capture_on_commit_callbacks(execute=False):
        response = admin_client.post(
            reverse("admin:notifications_notification_changelist"),
            {"action": "resend", "_selected_action": [email.pk]},
        )
    assert response.status_code == 302
    email.refresh_from_db()
    assert email.status == "pending"
