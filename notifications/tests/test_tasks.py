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
