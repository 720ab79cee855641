"""Notification writes: create records from events, send one, resend, sweep.

Idempotency: records are created inside the inbox transaction (one per event and channel, unique
``(dedup_key, channel)`` so even a replay with purged inbox rows cannot create a second one).

Sending never holds a lock or a transaction across the network, like the outbox relay: claim,
send, record. The claim is one conditional UPDATE (``pending`` -> ``sending``, or a ``sending``
row whose lease of ``NOTIFICATION_CLAIM_LEASE_SECONDS`` expired), so of two copies of a task only
one sends; a ``sent`` row is never claimed again. The send runs in autocommit, bounded by
``EMAIL_TIMEOUT`` / ``SMS_TIMEOUT_SECONDS``. The outcome is recorded by a second conditional
UPDATE. Both UPDATEs survive a lost database connection (a restarted server, a terminated
backend): they run again on a new one (``tourapp.db.retry_on_connection_loss``). The external
send itself is at-least-once: a worker that dies, or finds the database gone for longer than those
retries, between the provider's answer and the record leaves the row ``sending``; once the lease
expires the beat sweep re-dispatches it and the message goes out again. That is the only window.
"""

from __future__ import annotations

import json
import logging
import smtplib
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Literal

from celery import signature
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from bookings.event_schema import BookingEventPayload
from messaging.envelope import Event
from notifications.messages import render_email, render_sms, render_summary
from notifications.models import Notification, NotificationPreference
from notifications.queries import NOTIFICATIONS_INSERT_SQL, notification_claim_statement, notification_sent_statement
from notifications.sms import TransientSmsError, sms_backend
from tourapp.correlation import correlation_scope, get_correlation_id
from tourapp.db import instance_from_row, prepared_cursor, retry_on_connection_loss
from tourapp.metrics import END_TO_END_LATENCY
from tourapp.pii import mask_email, mask_phone

logger = logging.getLogger(__name__)

# Foreign producers (the lesson's Node.js service) may omit the currency; the lesson's amounts are USD.
DEFAULT_CURRENCY = "USD"

SendOutcome = Literal["sent", "skipped", "retry", "failed"]


def _languages_by_user(user_ids: set[int]) -> dict[int, str]:
    return dict(NotificationPreference.objects.filter(user_id__in=user_ids).values_list("user_id", "language"))


def notifications_create_for_events(*, events: Sequence[Event[BookingEventPayload]]) -> list[int]:
    """Create the email (and SMS when a phone is known) records; dispatch their sends on commit.

    Must run inside the caller's transaction (the inbox's). Returns the ids of the rows created
    (a row that already exists for the same event and channel is left alone: the unique
    constraint makes a replay with purged inbox rows harmless).
    """
    languages = _languages_by_user({e.payload.user_id for e in events if e.payload.user_id is not None})
    rows: list[dict[str, Any]] = []
    by_key: dict[tuple[str, str], Event[BookingEventPayload]] = {}
    for event in events:
        booking = event.payload
        context = {
            "tour_name": booking.tour_name,
            "total_price": f"{booking.total_price:.2f}" if booking.total_price is not None else "",
            "currency": booking.currency or DEFAULT_CURRENCY,
            "seats": booking.seats,
            "tier": booking.tier,
            "occurred_at": event.occurred_at,
        }
        common = {
            "dedup_key": event.dedup_key,
            "event_id": str(event.event_id) if event.event_id else None,
            "event_type": event.event_type,
            "booking_id": booking.booking_id,
            "correlation_id": event.correlation_id,
            "language": languages.get(booking.user_id or 0, settings.LANGUAGE_CODE),
            "context": context,
        }
        channels = [(Notification.Channel.EMAIL, booking.user_email, mask_email(booking.user_email))]
        if booking.phone:
            channels.append((Notification.Channel.SMS, booking.phone, mask_phone(booking.phone)))
        for channel, to, masked in channels:
            rows.append({**common, "channel": channel, "recipient": to, "recipient_masked": masked})
            by_key[(event.dedup_key, channel)] = event
    created = _insert_notifications(rows, by_key)
    pending = [(pk, event.correlation_id, event.event_id, event.payload.booking_id) for pk, event in created]
    # robust: the records are committed whatever happens to the dispatch; a failed dispatch (broker
    # down) is logged and healed by the beat sweep, it must not make the consumer retry the event.
    transaction.on_commit(lambda: notifications_dispatch(pending=pending), robust=True)
    return [pk for pk, *_ in pending]


def _insert_notifications(rows: list[dict[str, Any]], by_key: dict[tuple[str, str], Event]) -> list[tuple[int, Event]]:
    """One ``INSERT .. SELECT FROM jsonb_to_recordset(..) ON CONFLICT DO NOTHING RETURNING``: a Kafka
    batch of 500 events is one statement, and only the rows really created come back. The rows
    travel as one JSON document: encoding it is one C call, where array parameters are quoted
    element by element in Python (half the cost of the whole insert for a batch)."""
    if not rows:
        return []
    params = {"status": Notification.Status.PENDING, "now": timezone.now(), "rows": json.dumps(rows)}
    with prepared_cursor() as cursor:
        cursor.execute(NOTIFICATIONS_INSERT_SQL, params)
        return sorted((pk, by_key[(key, channel)]) for pk, key, channel in cursor.fetchall())


# Enqueued by its registered name: notifications.tasks imports this module, never the reverse.
NOTIFICATION_SEND_BATCH_TASK = "notifications.tasks.notification_send_batch_task"


def notifications_dispatch(*, pending: Sequence[tuple[int, str, object, str]]) -> None:
    """Hand the sends to Celery: one task per event (its correlation id in the task headers), or,
    for a big batch (a Kafka poll), chunks of ``NOTIFICATION_DISPATCH_CHUNK`` ids per task so the
    dispatch does not cost one broker round trip per notification.
    """
    send_batch = signature(NOTIFICATION_SEND_BATCH_TASK)
    by_event: dict[tuple[str, object, str], list[int]] = {}
    for pk, correlation_id, event_id, booking_id in pending:
        by_event.setdefault((correlation_id, event_id, booking_id), []).append(pk)
    chunk = settings.NOTIFICATION_DISPATCH_CHUNK
    if len(by_event) <= 2:
        for (correlation_id, event_id, booking_id), ids in by_event.items():
            with correlation_scope(correlation_id or None, event_id=event_id, booking_id=booking_id):
                send_batch.delay(ids)
        return
    ids = [pk for pk, *_ in pending]
    for start in range(0, len(ids), chunk):
        send_batch.delay(ids[start : start + chunk])


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TransientSmsError | smtplib.SMTPServerDisconnected | smtplib.SMTPConnectError):
        return True
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    return isinstance(exc, ConnectionError | TimeoutError | OSError) and not isinstance(exc, smtplib.SMTPException)


def _deliver(notification: Notification) -> None:
    if notification.channel == Notification.Channel.EMAIL:
        rendered = render_email(
            event_type=notification.event_type, context=notification.context, language=notification.language
        )
        EmailMessage(rendered.subject, rendered.body, settings.DEFAULT_FROM_EMAIL, [notification.recipient]).send()
    else:
        text = render_sms(
            event_type=notification.event_type, context=notification.context, language=notification.language
        )
        sms_backend().send(to=notification.recipient, text=text)


def notification_send(*, notification_id: int, final_attempt: bool) -> SendOutcome:
    """Claim, send, record (see the module docstring); ``retry`` means a transient failure the
    caller should retry, ``skipped`` that there was nothing to send (sent, failed, or claimed by
    another task whose lease still runs).

    Call it outside any transaction: the claim must be committed before the network call, so that
    neither a row lock nor an open transaction is held while the provider takes its time.
    """
    notification = _claim(notification_id)
    if notification is None:
        return "skipped"
    with correlation_scope(
        notification.correlation_id or get_correlation_id(),
        event_id=notification.event_id,
        booking_id=notification.booking_id,
    ):
        outcome = _send_claimed(notification, final_attempt=final_attempt)
    if outcome == "sent":
        _observe_latency(notification)
    return outcome


def _claim(notification_id: int) -> Notification | None:
    """Take the send lease and count the attempt: one conditional ``UPDATE .. RETURNING`` in
    autocommit, so a connection lost under it either claimed the row and returned it, or left it
    unclaimed (then it is tried again on a new connection); never a claim without its row."""
    sql, attnames = notification_claim_statement()

    def claim() -> Notification | None:
        now = timezone.now()
        params = {
            "id": notification_id,
            "now": now,
            "expired": now - timedelta(seconds=settings.NOTIFICATION_CLAIM_LEASE_SECONDS),
            "pending": Notification.Status.PENDING,
            "sending": Notification.Status.SENDING,
        }
        with prepared_cursor() as cursor:
            cursor.execute(sql, params, prepare=True)
            row = cursor.fetchone()
        return None if row is None else instance_from_row(Notification, attnames, row)

    return retry_on_connection_loss(claim, what=f"claiming notification {notification_id}")


def _send_claimed(notification: Notification, *, final_attempt: bool) -> SendOutcome:
    try:
        _deliver(notification)
    except SoftTimeLimitExceeded:
        # The task ran out of time mid-send: give the row back (the attempt counts) and let it stop.
        _record_unsent(notification, outcome="retry", error="SoftTimeLimitExceeded: the send task ran out of time")
        raise
    except Exception as exc:
        outcome: SendOutcome = "retry" if _is_transient(exc) and not final_attempt else "failed"
        return _record_unsent(notification, outcome=outcome, error=f"{type(exc).__name__}: {exc}"[:2000])
    return _record_sent(notification)


def _record_sent(notification: Notification) -> SendOutcome:
    """Record a success. Whoever holds the claim now, the message went out: never send it again."""
    notification.status = Notification.Status.SENT
    notification.sent_at = timezone.now()
    notification.summary = render_summary(
        event_type=notification.event_type,
        channel=notification.channel,
        recipient_masked=notification.recipient_masked,
        context=notification.context,
        language=notification.language,
    )
    params = {
        "id": notification.pk,
        "sent": Notification.Status.SENT,
        "now": notification.sent_at,
        "summary": notification.summary,
    }

    def record() -> None:
        with prepared_cursor() as cursor:
            cursor.execute(notification_sent_statement(), params, prepare=True)

    retry_on_connection_loss(record, what=f"recording notification {notification.pk} as sent")
    logger.info(notification.summary, extra={"notification_id": notification.pk})
    return "sent"


def _record_unsent(notification: Notification, *, outcome: SendOutcome, error: str) -> SendOutcome:
    """Record a failure, only while the claim is still ours (a task whose lease expired and was
    re-claimed leaves the row to the newer claim); ``skipped`` when it was not."""
    status = Notification.Status.PENDING if outcome == "retry" else Notification.Status.FAILED
    recorded = retry_on_connection_loss(
        lambda: Notification.objects.filter(
            pk=notification.pk, status=Notification.Status.SENDING, claimed_at=notification.claimed_at
        ).update(status=status, last_error=error, claimed_at=None, updated_at=timezone.now()),
        what=f"recording notification {notification.pk} as unsent",
    )
    logger.warning(
        "%s notification %s to %s: %s",
        "retrying" if outcome == "retry" else "giving up on",
        notification.pk,
        notification.recipient_masked,
        error,
    )
    return outcome if recorded else "skipped"


def _observe_latency(notification: Notification) -> None:
    from django.utils.dateparse import parse_datetime

    occurred = parse_datetime(notification.context.get("occurred_at") or "")
    if occurred is not None and occurred.tzinfo is not None and notification.sent_at is not None:
        seconds = max((notification.sent_at - occurred).total_seconds(), 0.0)
        END_TO_END_LATENCY.labels(handler=f"notifications.{notification.channel}").observe(seconds)


def notifications_resend(*, notification_ids: Sequence[int]) -> int:
    """Put failed (or stuck pending) notifications back to pending and dispatch them. Sent ones
    are left alone, and so are those a task is sending right now (lease not expired)."""
    lease_expired = timezone.now() - timedelta(seconds=settings.NOTIFICATION_CLAIM_LEASE_SECONDS)
    with transaction.atomic():
        rows = list(
            Notification.objects.select_for_update()
            .filter(pk__in=notification_ids)
            .exclude(status=Notification.Status.SENT)
            .exclude(status=Notification.Status.SENDING, claimed_at__gte=lease_expired)
            .order_by("pk")
        )
        Notification.objects.filter(pk__in=[n.pk for n in rows]).update(
            status=Notification.Status.PENDING, claimed_at=None, updated_at=timezone.now()
        )
        pending = [(n.pk, n.correlation_id, n.event_id, n.booking_id) for n in rows]
        transaction.on_commit(lambda: notifications_dispatch(pending=pending))
    return len(pending)


def notifications_sweep(*, older_than: timedelta) -> int:
    """Re-dispatch pending notifications untouched for ``older_than`` (a send task that got lost)
    and those whose send lease expired (a worker that died or timed out between claim and record)."""
    now = timezone.now()
    lease_expired = now - timedelta(seconds=settings.NOTIFICATION_CLAIM_LEASE_SECONDS)
    stale = Q(status=Notification.Status.PENDING, updated_at__lt=now - older_than) | Q(
        status=Notification.Status.SENDING, claimed_at__lt=lease_expired
    )
    pending = list(
        Notification.objects.filter(stale)
        .order_by("pk")
        .values_list("pk", "correlation_id", "event_id", "booking_id")[:1000]
    )
    notifications_dispatch(pending=pending)
    if pending:
        logger.warning("re-dispatched %d stale pending or expired sending notification(s)", len(pending))
    return len(pending)
