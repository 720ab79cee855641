"""Notification services: records per event, texts in the user's language, idempotent send, failures."""

from __future__ import annotations

import json
import logging
import smtplib

import pytest
from django.core import mail

from bookings.tests.factories import UserFactory
from messaging.envelope import event_parse
from messaging.tests.consumer_support import booking_payload, foreign_payload
from notifications.models import Notification, NotificationPreference
from notifications.services import notification_send, notifications_create_for_events, notifications_resend
from notifications.sms import LocmemSmsBackend, TransientSmsError

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
