"""Notification records in the admin: read-only pages without Save or Delete, pretty context."""

from __future__ import annotations

import pytest
from django.urls import reverse

from notifications.models import Notification

pytestmark = pytest.mark.django_db


def _notification() -> Notification:
    return Notification.objects.create(
        dedup_key="evt-admin-1",
        event_type="tour.booked",
        booking_id="1",
        channel=Notification.Channel.EMAIL,
        recipient="someone@example.com",
        recipient_masked="s***@example.com",
        language="en",
        status=Notification.Status.FAILED,
        context={"tour": "Paris City Tour", "seats": 2},
    )


def test_a_notification_page_is_read_only_with_its_context_indented_and_cannot_be_deleted(admin_client):
    # given
    notification = _notification()
    # when
    listing = admin_client.get(reverse("admin:notifications_notification_changelist")).content.decode()
    detail = admin_client.get(reverse("admin:notifications_notification_change", args=[notification.pk]))
    delete = admin_client.get(reverse("admin:notifications_notification_delete", args=[notification.pk]))
    # then
    html = detail.content.decode()
    assert detail.status_code == 200
    assert 'name="_save"' not in html and 'class="deletelink"' not in html
    assert "&quot;seats&quot;: 2,\n  &quot;tour&quot;: &quot;Paris City Tour&quot;" in html
    assert "delete_selected" not in listing and 'value="resend"' in listing
    assert delete.status_code == 403
