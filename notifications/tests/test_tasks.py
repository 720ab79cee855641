"""Notification tasks: thin, retry transient failures with capped, jittered backoff, bounded in time."""

from __future__ import annotations

import json
import uuid

import pytest
from celery.exceptions import Retry, SoftTimeLimitExceeded

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


def _pending_email() -> Notification:
    return Notification.objects.create(
        dedup_key=str(uuid.uuid4()),
        event_type="tour.booked",
        booking_id="7",
        channel=Notification.Channel.EMAIL,
        recipient="user@example.com",
        recipient_masked="u***@example.com",
        language="en",
        context={"tour_name": "Paris City Tour", "total_price": "199.99", "currency": "USD"},
    )


def test_every_task_has_a_soft_and_a_hard_time_limit_and_the_sweep_outlasts_its_budget(settings) -> None:
    # given: every task of the project, as the worker loads them
    from tourapp.celery import app

    app.loader.import_default_modules()
    ours = {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}
    assert {"messaging.tasks.outbox_sweep_task", "notifications.tasks.notification_send_task"} <= set(ours)

    def limits(task) -> tuple[float, float]:
        return (
            task.soft_time_limit or app.conf.task_soft_time_limit,
            task.time_limit or app.conf.task_time_limit,
        )

    # then: each has both limits, the soft one first (the task gets to clean up before the kill)
    for name, task in ours.items():
        soft, hard = limits(task)
        assert soft and hard and soft < hard, name
    sweep_soft, _ = limits(ours["messaging.tasks.outbox_sweep_task"])
    assert sweep_soft > settings.OUTBOX_SWEEP_BUDGET_SECONDS
    # and a send lease outlives the longest-running send task, so a live send is never taken over
    longest_send = max(limits(task)[1] for name, task in ours.items() if name.startswith("notifications."))
    assert longest_send < settings.NOTIFICATION_CLAIM_LEASE_SECONDS


def test_a_batch_cut_short_by_its_soft_time_limit_hands_the_rest_to_single_sends(monkeypatch) -> None:
    # given: three notifications; the soft time limit strikes while the second is being sent
    from notifications import services, tasks

    first, second, third = (_pending_email() for _ in range(3))
    sent: list[int] = []

    def deliver(notification: Notification) -> None:
        if notification.pk == second.pk:
            raise SoftTimeLimitExceeded()
        sent.append(notification.pk)

    handed: list[int] = []
    monkeypatch.setattr(services, "_deliver", deliver)
    monkeypatch.setattr(tasks.notification_send_task, "apply_async", lambda args, countdown: handed.extend(args))
    # when
    outcomes = tasks.notification_send_batch_task.apply(args=[[first.pk, second.pk, third.pk]]).get()
    # then: the first was sent; the interrupted one went back to pending and, with the third, to single sends
    assert outcomes == {"sent": 1, "retry": 2}
    assert sent == [first.pk]
    assert handed == [second.pk, third.pk]
    second.refresh_from_db()
    assert (second.status, second.attempts, second.claimed_at) == ("pending", 1, None)
    assert "SoftTimeLimitExceeded" in second.last_error


def test_a_single_send_cut_short_by_its_soft_time_limit_is_retried(monkeypatch) -> None:
    # given
    from notifications import services

    notification = _pending_email()
    monkeypatch.setattr(services, "_deliver", lambda notification: (_ for _ in ()).throw(SoftTimeLimitExceeded()))
    # when / then
    with pytest.raises(Retry):
        notification_send_task.apply(args=[notification.pk], throw=True)
    notification.refresh_from_db()
    assert notification.status == "pending"
