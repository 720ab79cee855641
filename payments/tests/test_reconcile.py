"""payments_reconcile: silent after real flows, loud about every kind of money mismatch."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from bookings.models import Booking
from payments.gateway import HttpDummyGateway, gateway_get
from payments.models import Payment
from payments.selectors import payments_reconcile
from payments.services import payment_charge, payment_refund

pytestmark = pytest.mark.django_db


def _codes() -> list[str]:
    return sorted(m.code for m in payments_reconcile(gateway_records=gateway_get().records()).mismatches)


def _charge_now(booking: Booking) -> Payment:
    charge = Payment.objects.get(booking=booking, kind=Payment.Kind.CHARGE)
    payment_charge(payment_id=charge.pk, final_attempt=False)
    return charge


def test_reconcile_finds_nothing_after_captures_declines_refunds_and_skips(gateway, book, cancel) -> None:
    # given
    _charge_now(book())
    _charge_now(book(token="tok_decline"))
    refunded = book()
    _charge_now(refunded)
    cancel(refunded)
    payment_refund(payment_id=Payment.objects.get(booking=refunded, kind="refund").pk, final_attempt=False)
    cancelled_early = book()
    cancel(cancelled_early)
    _charge_now(cancelled_early)

    # when
    report = payments_reconcile(gateway_records=gateway_get().records())

    # then
    assert report.mismatches == []
    assert (report.charges_captured, report.charges_declined, report.refunds) == (2, 1, 1)
    call_command("payments_reconcile")  # exit status 0: no SystemExit


def test_reconcile_reports_a_declined_booking_still_confirmed_and_a_paid_cancelled_one_without_refund(
    gateway, book
) -> None:
    # given
    declined = book(token="tok_decline")
    _charge_now(declined)
    Booking.objects.filter(pk=declined.pk).update(status=Booking.Status.CONFIRMED)
    paid = book()
    _charge_now(paid)
    Booking.objects.filter(pk=paid.pk).update(status=Booking.Status.CANCELLED)

    # when / then
    assert _codes() == ["declined_but_booked", "paid_cancelled_no_refund"]


def test_reconcile_reports_a_double_charge_and_a_charge_the_gateway_never_saw(gateway, book) -> None:
    # given: a second gateway charge for one booking under another key
    booking = book()
    charge = _charge_now(booking)
    HttpDummyGateway(base_url=gateway_get().base_url, timeout=1).charge(  # type: ignore[attr-defined]
        amount_minor=charge.amount_minor,
        currency=charge.currency,
        idempotency_key="someone-else",
        payment_token="tok_success",
        booking_id=booking.pk,
    )
    # and a captured charge of ours the gateway has no record of
    ghost = book()
    Payment.objects.filter(booking=ghost).update(state=Payment.State.SUCCEEDED, provider_reference="ch_ghost")
    Booking.objects.filter(pk=ghost.pk).update(payment_status=Booking.PaymentStatus.PAID)

    # when / then
    assert _codes() == ["double_charge", "gateway_unrecorded", "missing_at_gateway"]
    with pytest.raises(SystemExit) as exit_info:
        call_command("payments_reconcile")
    assert exit_info.value.code == 1


def test_reconcile_reports_an_amount_that_is_not_the_booking_total(gateway, book) -> None:
    # given
    booking = book()
    Payment.objects.filter(booking=booking).update(amount_minor=1)

    # when / then
    assert _codes() == ["amount_mismatch"]
