"""notification_send_task: thin, retries transient failures with capped, jittered backoff."""

from __future__ import annotations

import json

import pytest
from celery.exceptions import Retry

from messaging.envelope import event_parse
from messaging.tests.consumer_support import booking_payload
from notifications.models import Notification
from notifications.services import notifications_create_for_events
from notifications.tasks import notification_send_task, retry_countdown

pytestmark = pytest.mark.django_db


class Flaky:
    def send(self, *, to: str, text: str) -> None:
        from notifications.sms import TransientSmsError

        raise TransientSmsError("busy")


def test_retry_countdown_grows_exponentially_and_is_capped(settings) -> None:
    settings.NOTIFICATION_RETRY_BACKOFF_MAX_SECONDS = 10
    assert all(0 <= retry_countdown(0) <= 2 for _ in range(50))
    assert all(0 <= retry_countdown(20) <= 10 for _ in range(50))


def test_the_task_asks_celery_to_retry_a_transient_failure(settings, django_capture_on_commit_callbacks) -> None:
    # given
    settings.SMS_BACKEND = f"{__name__}.Flaky"
    with django_capture_on_commit_callbacks(execute=False):
        notifications_create_for_events(events=[event_parse(body=json.dumps(booking_payload()))])
    sms = Notification.objects.get(channel="sms")
    # when
    with pytest.raises(Retry):
        notification_send_task.apply(args=[sms.pk], throw=True)
    # then
    sms.refresh_from_db()
    assert (sms.status, sms.attempts) == ("pending", 1)


def test_the_task_is_acks_late_and_rejects_on_worker_loss() -> None:
    assert notification_send_task.acks_late is True
    assert notification_send_task.reject_on_worker_lost is True


def test_the_sweep_redispatches_only_stale_pending_notifications(settings, monkeypatch) -> None:
    # given: one stale pending notification, one fresh
    from datetime import timedelta

    from django.utils import timezone

    from notifications import services

    with_ids = notifications_create_for_events(events=[event_parse(body=json.dumps(booking_payload(phone=None)))])
    fresh_ids = notifications_create_for_events(events=[event_parse(body=json.dumps(booking_payload(phone=None)))])
    Notification.objects.filter(pk__in=with_ids).update(updated_at=timezone.now() - timedelta(hours=1))
    dispatched: list = []
    monkeypatch.setattr(services, "notifications_dispatch", lambda *, pending: dispatched.extend(pending))
    # when
    count = services.notifications_sweep(older_than=timedelta(minutes=10))
    # then
    assert count == 1
    assert [row[0] for row in dispatched] == with_ids
    assert fresh_ids[0] not in [row[0] for row in dispatched]
