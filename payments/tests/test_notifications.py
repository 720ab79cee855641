"""What the customer hears: "payment failed" once for a declined payment, "paid" for a capture."""

from __future__ import annotations

import pytest

from bookings.event_schema import PAYMENT_CAPTURED, PAYMENT_FAILED, TOUR_CANCELLED
from messaging.inbox import inbox_process
from messaging.registry import TRANSPORT_RABBITMQ, handler_get
from notifications.messages import render_email, render_sms
from notifications.models import Notification
from payments.models import Payment
from payments.services import payment_charge
from payments.tests.conftest import outbox_event

pytestmark = pytest.mark.django_db


def _notify(event, capture) -> None:
    with capture(execute=False):
        inbox_process(handler=handler_get("notifications"), events=[event], transport=TRANSPORT_RABBITMQ)


def test_a_declined_payment_tells_the_customer_once_that_the_payment_failed(
    gateway, book, django_capture_on_commit_callbacks
) -> None:
    # given: a declined charge, compensated (tour.cancelled + payment.failed recorded)
    booking = book(token="tok_decline")
    payment_charge(payment_id=Payment.objects.get(booking=booking).pk, final_attempt=False)

    # when: both events reach the notifications consumer
    for event_type in (TOUR_CANCELLED, PAYMENT_FAILED):
        _notify(outbox_event(booking_id=booking.pk, event_type=event_type), django_capture_on_commit_callbacks)

    # then: one email (the booking has no phone), about the failed payment, for the cancellation
    notifications = list(Notification.objects.filter(booking_id=str(booking.pk)))
    assert [n.channel for n in notifications] == ["email"]
    assert notifications[0].event_type == PAYMENT_FAILED
    cancelled = outbox_event(booking_id=booking.pk, event_type=TOUR_CANCELLED)
    assert notifications[0].event_id == cancelled.event_id
    email = render_email(event_type=PAYMENT_FAILED, context=notifications[0].context, language="en")
    assert email.subject.startswith("Payment failed")
    assert "cancelled" in email.body and "Nothing was charged" in email.body


def test_a_captured_payment_sends_a_paid_confirmation(gateway, book, django_capture_on_commit_callbacks) -> None:
    # given
    booking = book()
    payment_charge(payment_id=Payment.objects.get(booking=booking).pk, final_attempt=False)

    # when
    _notify(outbox_event(booking_id=booking.pk, event_type=PAYMENT_CAPTURED), django_capture_on_commit_callbacks)

    # then
    email = Notification.objects.get(booking_id=str(booking.pk), channel="email")
    rendered = render_email(event_type=email.event_type, context=email.context, language="en")
    assert rendered.subject.startswith("Payment received")
    assert "199.99 USD" in rendered.body and "is paid" in rendered.body
    assert "Payment received" in render_sms(event_type=PAYMENT_CAPTURED, context=email.context, language="en")
