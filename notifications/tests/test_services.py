"""Notification services: records per event, texts in the user's language, idempotent send, failures,
and the send discipline: claim, send with a timeout and no transaction open, record."""

from __future__ import annotations

import json
import logging
import smtplib
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

import psycopg
import pytest
from django.core import mail
from django.db import connection, connections
from django.utils import timezone

from bookings.tests.factories import UserFactory
from messaging.envelope import event_parse
from messaging.tests.consumer_support import booking_payload, foreign_payload
from notifications import services
from notifications.models import Notification, NotificationPreference
from notifications.services import notification_send, notifications_create_for_events, notifications_resend
from notifications.sms import LocmemSmsBackend, TransientSmsError, sms_backend

pytestmark = pytest.mark.django_db


class TransientFailingSms:
    def send(self, *, to: str, text: str) -> None:
        raise TransientSmsError("provider timeout")


class PermanentFailingSms:
    def send(self, *, to: str, text: str) -> None:
        raise ValueError("invalid number")


@pytest.fixture(autouse=True)
def _locmem_sms(settings):
    settings.SMS_BACKEND = "notifications.sms.LocmemSmsBackend"
    LocmemSmsBackend.outbox = []


def _create(payload: dict, django_capture_on_commit_callbacks, **headers) -> list[Notification]:
    event = event_parse(body=json.dumps(payload), headers=headers)
    with django_capture_on_commit_callbacks(execute=False):
        ids = notifications_create_for_events(events=[event])
    return list(Notification.objects.filter(pk__in=ids).order_by("channel"))


def test_a_booking_event_creates_an_email_and_an_sms_with_masked_recipients(django_capture_on_commit_callbacks) -> None:
    email, sms = _create(booking_payload(), django_capture_on_commit_callbacks)
    assert (email.channel, email.recipient, email.recipient_masked) == ("email", "user@example.com", "u***@example.com")
    assert (sms.channel, sms.recipient_masked) == ("sms", "+33*******78")
    assert email.context["total_price"] == "199.99"


def test_sending_in_french_uses_the_lessons_sentence_with_the_recipient_masked(
    django_capture_on_commit_callbacks, caplog
) -> None:
    # given: a French-speaking user
    user = UserFactory()
    NotificationPreference.objects.create(user=user, language="fr")
    email, sms = _create(booking_payload(userId=user.pk), django_capture_on_commit_callbacks)
    caplog.set_level(logging.INFO)
    # when
    outcomes = [notification_send(notification_id=n.pk, final_attempt=False) for n in (email, sms)]
    # then
    assert outcomes == ["sent", "sent"]
    email.refresh_from_db()
    assert email.summary == "Email envoyé à u***@example.com pour le tour 'Paris City Tour' d'un montant de 199.99 USD"
    assert mail.outbox[0].subject == "Réservation confirmée : Paris City Tour"
    assert "Votre réservation pour le tour 'Paris City Tour' est confirmée" in mail.outbox[0].body
    assert LocmemSmsBackend.outbox == [("+33612345678", "Réservation confirmée : 'Paris City Tour', 199.99 USD.")]
    assert "Email envoyé à u***@example.com" in caplog.text
    assert "user@example.com" not in caplog.text and "+33612345678" not in caplog.text


def test_english_is_the_default_and_a_cancellation_has_its_own_text(django_capture_on_commit_callbacks) -> None:
    email, _sms = _create(booking_payload(eventType="tour.cancelled"), django_capture_on_commit_callbacks)
    notification_send(notification_id=email.pk, final_attempt=False)
    email.refresh_from_db()
    assert email.summary.startswith("Cancellation email sent to u***@example.com for the tour 'Paris City Tour'")
    assert mail.outbox[0].subject == "Booking cancelled: Paris City Tour"


def test_a_foreign_message_without_currency_reads_as_usd(django_capture_on_commit_callbacks) -> None:
    email, _ = _create(foreign_payload(), django_capture_on_commit_callbacks, eventType="tour.booked")
    notification_send(notification_id=email.pk, final_attempt=False)
    email.refresh_from_db()
    assert email.summary == "Email sent to u***@example.com for the tour 'Paris City Tour' for an amount of 199.99 USD"


def test_sending_twice_sends_one_email(django_capture_on_commit_callbacks) -> None:
    (email,) = _create(booking_payload(phone=None), django_capture_on_commit_callbacks)
    assert notification_send(notification_id=email.pk, final_attempt=False) == "sent"
    assert notification_send(notification_id=email.pk, final_attempt=False) == "skipped"
    assert len(mail.outbox) == 1


def test_the_same_event_twice_creates_one_record_per_channel(django_capture_on_commit_callbacks) -> None:
    payload = booking_payload()
    _create(payload, django_capture_on_commit_callbacks)
    _create(payload, django_capture_on_commit_callbacks)
    assert Notification.objects.filter(dedup_key=payload["eventId"]).count() == 2


def test_a_transient_failure_is_retried_and_the_final_one_is_recorded(settings, django_capture_on_commit_callbacks):
    # given
    settings.SMS_BACKEND = f"{__name__}.TransientFailingSms"
    _email, sms = _create(booking_payload(), django_capture_on_commit_callbacks)
    # when / then: a retry while attempts remain, then failed, with the error kept
    assert notification_send(notification_id=sms.pk, final_attempt=False) == "retry"
    sms.refresh_from_db()
    assert (sms.status, sms.attempts, sms.last_error) == ("pending", 1, "TransientSmsError: provider timeout")
    assert notification_send(notification_id=sms.pk, final_attempt=True) == "failed"
    sms.refresh_from_db()
    assert (sms.status, sms.attempts) == ("failed", 2)


def test_a_permanent_failure_is_recorded_at_once(settings, django_capture_on_commit_callbacks) -> None:
    settings.SMS_BACKEND = f"{__name__}.PermanentFailingSms"
    _email, sms = _create(booking_payload(), django_capture_on_commit_callbacks)
    assert notification_send(notification_id=sms.pk, final_attempt=False) == "failed"
    sms.refresh_from_db()
    assert sms.last_error == "ValueError: invalid number"


def test_an_smtp_4xx_is_transient_and_a_5xx_permanent(settings, django_capture_on_commit_callbacks, monkeypatch):
    from django.core.mail import EmailMessage

    (email,) = _create(booking_payload(phone=None), django_capture_on_commit_callbacks)
    monkeypatch.setattr(EmailMessage, "send", lambda self: (_ for _ in ()).throw(smtplib.SMTPDataError(451, b"later")))
    assert notification_send(notification_id=email.pk, final_attempt=False) == "retry"
    monkeypatch.setattr(EmailMessage, "send", lambda self: (_ for _ in ()).throw(smtplib.SMTPDataError(554, b"no")))
    assert notification_send(notification_id=email.pk, final_attempt=False) == "failed"


def test_resend_puts_failed_notifications_back_and_dispatches_them(
    settings, django_capture_on_commit_callbacks
) -> None:
    # given: a failed SMS and a sent email
    settings.SMS_BACKEND = f"{__name__}.PermanentFailingSms"
    email, sms = _create(booking_payload(), django_capture_on_commit_callbacks)
    notification_send(notification_id=email.pk, final_attempt=False)
    notification_send(notification_id=sms.pk, final_attempt=False)
    # when
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        count = notifications_resend(notification_ids=[email.pk, sms.pk])
    # then: only the failed one, dispatched after commit
    assert count == 1
    assert len(callbacks) == 1
    sms.refresh_from_db()
    assert sms.status == "pending"


def _notification(**overrides) -> Notification:
    """A pending email record written directly (no dispatch: nothing reaches a real worker)."""
    fields = {
        "dedup_key": str(uuid.uuid4()),
        "event_type": "tour.booked",
        "booking_id": "42",
        "channel": Notification.Channel.EMAIL,
        "recipient": "user@example.com",
        "recipient_masked": "u***@example.com",
        "language": "en",
        "context": {"tour_name": "Paris City Tour", "total_price": "199.99", "currency": "USD"},
    }
    return Notification.objects.create(**{**fields, **overrides})


class HungSmtpServer:
    """A real socket that accepts SMTP connections and never says a word (no 220 greeting).

    On each connection it runs ``on_connect`` in its own thread, while the client waits."""

    def __init__(self, on_connect: Callable[[], None]) -> None:
        self.on_connect = on_connect
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.sock.accept()
            self.connections.append(conn)
            self.on_connect()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.errors.append(exc)

    def close(self) -> None:
        for conn in self.connections:
            conn.close()
        self.sock.close()
        self.thread.join(timeout=10)


@pytest.mark.django_db(transaction=True)
def test_a_hung_smtp_server_times_out_holds_no_transaction_and_the_send_is_retried_later(settings) -> None:
    # given: a notification, and a mail server that accepts and then hangs
    notification = _notification()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (sender_pid,) = cursor.fetchone()
    seen: dict[str, str] = {}

    def look_from_another_connection() -> None:
        # runs while the sender waits for the greeting; a thread has its own database connection
        try:
            with connections["default"].cursor() as cursor:
                cursor.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", [sender_pid])
                seen["sender_state"] = cursor.fetchone()[0]
                cursor.execute("SELECT status FROM notifications_notification WHERE id = %s", [notification.pk])
                seen["row_status"] = cursor.fetchone()[0]
        finally:
            connections["default"].close()

    server = HungSmtpServer(look_from_another_connection)
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", server.port, 1.0
    try:
        # when
        started = time.monotonic()
        outcome = notification_send(notification_id=notification.pk, final_attempt=False)
        elapsed = time.monotonic() - started
    finally:
        server.close()

    # then: the send gave up after EMAIL_TIMEOUT, with the claim committed and no transaction open
    assert server.errors == []
    assert outcome == "retry"
    assert elapsed < 10
    assert seen == {"sender_state": "idle", "row_status": "sending"}
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.claimed_at) == ("pending", 1, None)
    assert "Connection unexpectedly closed" in notification.last_error or "timed out" in notification.last_error
    # and when the mail server answers again, the retry sends it once
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert notification_send(notification_id=notification.pk, final_attempt=False) == "sent"
    assert notification_send(notification_id=notification.pk, final_attempt=False) == "skipped"
    assert len(mail.outbox) == 1
    notification.refresh_from_db()
    assert (notification.status, notification.attempts) == ("sent", 2)


class AtomicRecordingSms:
    """Records whether a database transaction was open while the provider was being called."""

    calls: list[tuple[bool, str]] = []

    def __init__(self) -> None:
        self.timeout = 0.5

    def send(self, *, to: str, text: str) -> None:
        AtomicRecordingSms.calls.append((connection.in_atomic_block, connection.get_autocommit() and "autocommit"))


@pytest.mark.django_db(transaction=True)
def test_the_sms_provider_is_called_outside_any_transaction(settings) -> None:
    # given
    settings.SMS_BACKEND = f"{__name__}.AtomicRecordingSms"
    AtomicRecordingSms.calls = []
    sms = _notification(channel=Notification.Channel.SMS, recipient="+33612345678", recipient_masked="+33*******78")
    # when
    outcome = notification_send(notification_id=sms.pk, final_attempt=False)
    # then
    assert outcome == "sent"
    assert AtomicRecordingSms.calls == [(False, "autocommit")]


def test_sms_backends_carry_the_configured_timeout(settings) -> None:
    settings.SMS_BACKEND = "notifications.sms.LoggingSmsBackend"
    settings.SMS_TIMEOUT_SECONDS = 3.5
    assert sms_backend().timeout == 3.5


def test_a_notification_another_task_is_sending_is_skipped_until_its_lease_expires(settings) -> None:
    # given: a notification claimed by a task that is still within its lease
    settings.NOTIFICATION_CLAIM_LEASE_SECONDS = 60
    notification = _notification(status=Notification.Status.SENDING, claimed_at=timezone.now(), attempts=1)
    # when / then: a second copy of the task does not send it
    assert notification_send(notification_id=notification.pk, final_attempt=False) == "skipped"
    assert mail.outbox == []
    # when the claiming worker died and the lease ran out, then it is sent (at-least-once)
    Notification.objects.filter(pk=notification.pk).update(claimed_at=timezone.now() - timedelta(seconds=61))
    assert notification_send(notification_id=notification.pk, final_attempt=False) == "sent"
    assert len(mail.outbox) == 1
    notification.refresh_from_db()
    assert (notification.status, notification.attempts, notification.claimed_at) == ("sent", 2, None)


def test_a_failure_reported_after_the_claim_was_taken_over_leaves_the_row_to_the_new_claim(
    settings, monkeypatch
) -> None:
    # given: a send that fails only after its lease expired and another task claimed the row
    settings.NOTIFICATION_CLAIM_LEASE_SECONDS = 60
    notification = _notification()
    newer_claim = timezone.now() + timedelta(seconds=1)

    def fail_after_takeover(claimed: Notification) -> None:
        Notification.objects.filter(pk=claimed.pk).update(claimed_at=newer_claim)
        raise smtplib.SMTPServerDisconnected("gone")

    monkeypatch.setattr(services, "_deliver", fail_after_takeover)
    # when
    outcome = notification_send(notification_id=notification.pk, final_attempt=False)
    # then: the newer claim's row is untouched (no retry scheduled from the stale one)
    assert outcome == "skipped"
    notification.refresh_from_db()
    assert (notification.status, notification.claimed_at, notification.last_error) == ("sending", newer_claim, "")


def test_the_sweep_redispatches_sends_whose_lease_expired(settings, monkeypatch) -> None:
    # given: one notification whose sender died mid-send long ago, one being sent now
    settings.NOTIFICATION_CLAIM_LEASE_SECONDS = 60
    expired = _notification(status=Notification.Status.SENDING, claimed_at=timezone.now() - timedelta(minutes=5))
    _notification(status=Notification.Status.SENDING, claimed_at=timezone.now())
    dispatched: list = []
    monkeypatch.setattr(services, "notifications_dispatch", lambda *, pending: dispatched.extend(pending))
    # when
    count = services.notifications_sweep(older_than=timedelta(minutes=10))
    # then
    assert count == 1
    assert [row[0] for row in dispatched] == [expired.pk]


class BackendTerminatingSms:
    """Terminates the sender's own database backend while the provider is being called, as a
    PostgreSQL restart or ``pg_terminate_backend`` would between the claim and the record."""

    sent: list[str] = []

    def __init__(self) -> None:
        self.timeout = 0.5

    def send(self, *, to: str, text: str) -> None:
        pid = connection.connection.info.backend_pid
        with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
            other.execute("SELECT pg_terminate_backend(%s, 5000)", [pid])
        BackendTerminatingSms.sent.append(to)


@pytest.mark.django_db(transaction=True)
def test_a_database_connection_lost_during_the_send_still_records_it_sent_once(settings) -> None:
    # given: a notification, and a provider call during which the worker's backend is terminated
    settings.SMS_BACKEND = f"{__name__}.BackendTerminatingSms"
    BackendTerminatingSms.sent = []
    sms = _notification(channel=Notification.Channel.SMS, recipient="+33612345678", recipient_masked="+33*******78")
    # when
    outcome = notification_send(notification_id=sms.pk, final_attempt=False)
    # then: the record went through on a new connection; the row is not left "sending" for a lease
    assert outcome == "sent"
    sms.refresh_from_db()
    assert (sms.status, sms.claimed_at, sms.attempts) == ("sent", None, 1)
    assert BackendTerminatingSms.sent == ["+33612345678"]
    assert notification_send(notification_id=sms.pk, final_attempt=False) == "skipped"
    assert BackendTerminatingSms.sent == ["+33612345678"]
