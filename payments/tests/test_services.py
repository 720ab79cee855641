"""Charges, declines with compensation, refunds and retries against the real dummy gateway (HTTP)."""

from __future__ import annotations

import pytest

from bookings.event_schema import PAYMENT_CAPTURED, PAYMENT_FAILED, PAYMENT_REFUNDED, TOUR_CANCELLED
from bookings.models import Booking
from messaging.models import OutboxEvent
from payments.gateway import HttpDummyGateway, gateway_get
from payments.models import Payment
from payments.services import payment_charge, payment_refund, payments_redrive
from payments.tests.conftest import apply_to_payments, outbox_event

pytestmark = pytest.mark.django_db


def _charge(booking: Booking) -> Payment:
    return Payment.objects.get(booking=booking, kind=Payment.Kind.CHARGE)


def _gateway_ops() -> list:
    return gateway_get().records()


def test_tour_booked_creates_one_pending_charge_of_the_booking_total_in_minor_units(
    gateway, book, django_capture_on_commit_callbacks
) -> None:
    # given
    booking = book(seats=2)

    # when: the same event again (a redelivery past the inbox, e.g. a replay with purged inbox rows)
    event = outbox_event(booking_id=booking.pk, event_type="tour.booked")
    apply_to_payments(event, django_capture_on_commit_callbacks)

    # then
    charge = _charge(booking)
    assert Payment.objects.filter(booking=booking).count() == 1
    assert (charge.state, charge.amount_minor, charge.currency) == (Payment.State.PENDING, 39998, "USD")
    assert charge.idempotency_key == f"charge:{booking.pk}"


def test_captured_charge_marks_the_booking_paid_and_records_payment_captured(gateway, book) -> None:
    # given
    booking = book()

    # when
    outcome = payment_charge(payment_id=_charge(booking).pk, final_attempt=False)

    # then
    charge = _charge(booking)
    assert outcome == "captured"
    assert charge.state == Payment.State.SUCCEEDED and charge.provider_reference.startswith("ch_")
    booking.refresh_from_db()
    assert (booking.status, booking.payment_status) == (Booking.Status.CONFIRMED, Booking.PaymentStatus.PAID)
    event = OutboxEvent.objects.get(event_type=PAYMENT_CAPTURED)
    assert event.routing_key == "payment.captured.standard"
    assert event.payload["amountMinor"] == 19999 and event.payload["providerReference"] == charge.provider_reference


def test_two_copies_of_a_charge_task_in_flight_at_once_record_one_capture(gateway, book, monkeypatch) -> None:
    # given: a charge whose task runs twice at once (a redelivery while the first copy is at the gateway)
    booking = book()
    charge_id = _charge(booking).pk
    second: list[str] = []
    calls: list[int] = []
    real_charge = HttpDummyGateway.charge

    def charge_then_let_the_other_copy_run(self, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        result = real_charge(self, **kwargs)
        if len(calls) == 1:  # the first copy, back from the gateway: the second runs whole now
            second.append(payment_charge(payment_id=charge_id, final_attempt=False))
        return result

    monkeypatch.setattr(HttpDummyGateway, "charge", charge_then_let_the_other_copy_run)

    # when
    first = payment_charge(payment_id=charge_id, final_attempt=False)

    # then: both asked the gateway (same idempotency key, so one charge there), one recorded it
    assert len(calls) == 2
    assert sorted([first, *second]) == ["captured", "noop"]
    charge = _charge(booking)
    assert (charge.state, charge.attempts) == (Payment.State.SUCCEEDED, 2)
    assert OutboxEvent.objects.filter(event_type=PAYMENT_CAPTURED).count() == 1
    assert [op.kind for op in _gateway_ops()] == ["charge"]


def test_declined_charge_cancels_the_booking_releases_its_seats_and_records_both_events(
    gateway, book, departure
) -> None:
    # given
    booking = book(token="tok_decline", seats=3)

    # when
    outcome = payment_charge(payment_id=_charge(booking).pk, final_attempt=False)

    # then
    assert outcome == "declined"
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CANCELLED
    assert booking.cancellation_reason == Booking.CancellationReason.PAYMENT_DECLINED
    assert booking.payment_status == Booking.PaymentStatus.FAILED
    departure.refresh_from_db()
    assert departure.seats_reserved == 0
    cancelled = OutboxEvent.objects.get(event_type=TOUR_CANCELLED)
    assert cancelled.payload["cancellationReason"] == "payment_declined"
    failed = OutboxEvent.objects.get(event_type=PAYMENT_FAILED)
    assert failed.payload["declineCode"] == "card_declined"
    assert failed.correlation_id == cancelled.correlation_id
    assert _charge(booking).state == Payment.State.FAILED


def test_compensation_cancellation_asks_for_no_refund(gateway, book, django_capture_on_commit_callbacks) -> None:
    # given: a declined charge, compensated
    booking = book(token="tok_decline")
    payment_charge(payment_id=_charge(booking).pk, final_attempt=False)

    # when: its tour.cancelled comes back to the payments consumer
    apply_to_payments(
        outbox_event(booking_id=booking.pk, event_type=TOUR_CANCELLED), django_capture_on_commit_callbacks
    )

    # then
    assert not Payment.objects.filter(booking=booking, kind=Payment.Kind.REFUND).exists()


def test_a_timeout_after_the_charge_took_place_is_retried_and_returns_the_same_charge(gateway, book) -> None:
    # given: the gateway charges, then answers after the client gave up
    booking = book(token="tok_timeout")
    payment_id = _charge(booking).pk

    # when
    first = payment_charge(payment_id=payment_id, final_attempt=False)
    second = payment_charge(payment_id=payment_id, final_attempt=False)

    # then
    assert (first, second) == ("retry", "captured")
    charge = _charge(booking)
    operations = _gateway_ops()
    assert len(operations) == 1
    assert charge.provider_reference == operations[0].reference
    assert charge.attempts == 2


def test_a_worker_killed_between_charge_and_record_gets_the_same_charge_on_redelivery(gateway, book) -> None:
    # given: an attempt counted and charged at the gateway, then the worker died before recording
    booking = book()
    charge = _charge(booking)
    Payment.objects.filter(pk=charge.pk).update(attempts=1)
    charged = HttpDummyGateway(base_url=gateway_get().base_url, timeout=1).charge(  # type: ignore[attr-defined]
        amount_minor=charge.amount_minor,
        currency=charge.currency,
        idempotency_key=charge.idempotency_key,
        payment_token=charge.payment_token,
        booking_id=booking.pk,
    )

    # when: the task is redelivered
    outcome = payment_charge(payment_id=charge.pk, final_attempt=False)

    # then
    assert outcome == "captured"
    assert _charge(booking).provider_reference == charged.reference
    assert len(_gateway_ops()) == 1


def test_a_dead_gateway_is_retried_then_dead_then_redriven_and_captured(gateway, book, settings) -> None:
    # given: nothing listens on the gateway's port
    booking = book()
    payment_id = _charge(booking).pk
    live_url = settings.PAYMENTS_GATEWAY_URL
    settings.PAYMENTS_GATEWAY_URL = "http://127.0.0.1:9"

    # when
    outcomes = [payment_charge(payment_id=payment_id, final_attempt=final) for final in (False, True)]

    # then
    assert outcomes == ["retry", "dead"]
    dead = _charge(booking)
    assert dead.state == Payment.State.DEAD and "unreachable" in dead.last_error
    # when: the gateway is back and staff re-drive it
    settings.PAYMENTS_GATEWAY_URL = live_url
    assert payments_redrive(payment_ids=[payment_id]) == 1
    assert payment_charge(payment_id=payment_id, final_attempt=False) == "captured"


def test_an_unknown_payment_token_is_not_retried_and_goes_dead(gateway, book) -> None:
    # given
    booking = book(token="tok_nonsense")

    # when
    outcome = payment_charge(payment_id=_charge(booking).pk, final_attempt=False)

    # then
    assert outcome == "dead"
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED  # a bug of ours never cancels a customer's booking


def test_cancelling_a_paid_booking_refunds_the_charge(
    gateway, book, cancel, django_capture_on_commit_callbacks
) -> None:
    # given
    booking = book()
    payment_charge(payment_id=_charge(booking).pk, final_attempt=False)

    # when
    cancel(booking)
    refund = Payment.objects.get(booking=booking, kind=Payment.Kind.REFUND)
    outcome = payment_refund(payment_id=refund.pk, final_attempt=False)

    # then
    assert outcome == "refunded"
    refund.refresh_from_db()
    assert refund.state == Payment.State.SUCCEEDED and refund.provider_reference.startswith("re_")
    assert refund.amount_minor == _charge(booking).amount_minor
    booking.refresh_from_db()
    assert booking.payment_status == Booking.PaymentStatus.REFUNDED
    assert (
        OutboxEvent.objects.get(event_type=PAYMENT_REFUNDED).payload["providerReference"] == refund.provider_reference
    )
    assert payment_refund(payment_id=refund.pk, final_attempt=False) == "noop"
    assert [op.kind for op in _gateway_ops()] == ["charge", "refund"]


def test_a_refund_waits_for_a_charge_in_flight_and_the_settled_charge_kicks_it(
    gateway, book, cancel, django_capture_on_commit_callbacks
) -> None:
    # given: a charge attempt under way (counted) when the customer cancels
    booking = book()
    charge = _charge(booking)
    Payment.objects.filter(pk=charge.pk).update(attempts=1)
    cancel(booking)
    refund = Payment.objects.get(booking=booking, kind=Payment.Kind.REFUND)
    assert payment_refund(payment_id=refund.pk, final_attempt=False) == "waiting"

    # when: the charge goes through
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert payment_charge(payment_id=charge.pk, final_attempt=False) == "captured"

    # then: a refund kick is queued on commit, and the refund goes through
    assert callbacks, "the settled charge must kick the pending refund"
    assert payment_refund(payment_id=refund.pk, final_attempt=False) == "refunded"


def test_a_booking_cancelled_before_any_attempt_is_never_charged(
    gateway, book, cancel, django_capture_on_commit_callbacks
) -> None:
    # given
    booking = book()
    cancel(booking)

    # when
    charge_outcome = payment_charge(payment_id=_charge(booking).pk, final_attempt=False)
    refund = Payment.objects.get(booking=booking, kind=Payment.Kind.REFUND)
    refund_outcome = payment_refund(payment_id=refund.pk, final_attempt=False)

    # then
    assert (charge_outcome, refund_outcome) == ("skipped", "skipped")
    assert _gateway_ops() == []


def test_payment_metrics_count_captures_declines_and_gateway_latency(gateway, book) -> None:
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    # given
    captured_before = sample("tourapp_payments_captured_total", currency="USD")
    declined_before = sample("tourapp_payments_declined_total", currency="USD")
    calls_before = sample("tourapp_payment_gateway_seconds_count", operation="charge", outcome="captured")

    # when
    payment_charge(payment_id=_charge(book()).pk, final_attempt=False)
    payment_charge(payment_id=_charge(book(token="tok_decline")).pk, final_attempt=False)

    # then
    assert sample("tourapp_payments_captured_total", currency="USD") == captured_before + 1
    assert sample("tourapp_payments_declined_total", currency="USD") == declined_before + 1
    assert sample("tourapp_payment_gateway_seconds_count", operation="charge", outcome="captured") == calls_before + 1
