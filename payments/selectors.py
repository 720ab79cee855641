"""Reads of payments, and the reconciliation of bookings, payments and the gateway's records."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Min

from bookings.models import Booking
from payments.gateway import GatewayRecord, amount_to_minor
from payments.models import Payment


@dataclass(frozen=True)
class Mismatch:
    code: str
    booking_id: int | str
    detail: str


@dataclass
class ReconcileReport:
    bookings: int = 0
    charges_captured: int = 0
    charges_declined: int = 0
    refunds: int = 0
    pending: int = 0  # in flight: not a mismatch (yet)
    gateway_charges: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)


def _expected_payment_status(charge: Payment | None, refund: Payment | None) -> str:
    if refund is not None and refund.state == Payment.State.SUCCEEDED:
        return Booking.PaymentStatus.REFUNDED
    if charge is not None and charge.state == Payment.State.SUCCEEDED:
        return Booking.PaymentStatus.PAID
    if charge is not None and charge.state == Payment.State.FAILED:
        return Booking.PaymentStatus.FAILED
    return Booking.PaymentStatus.PENDING


def payments_reconcile(*, gateway_records: Iterable[GatewayRecord], since: datetime | None = None) -> ReconcileReport:
    """Every disagreement between bookings, our payment rows and the gateway's operations.

    Bookings from ``since`` on (default: since the first payment row, bookings older than the
    payments app were never charged) must each have a charge. In-flight rows (pending) are
    counted, not reported.
    """
    report = ReconcileReport()
    out = report.mismatches
    if since is None:
        since = Payment.objects.aggregate(first=Min("created_at"))["first"]
    payments = list(Payment.objects.all())
    by_booking: dict[int, dict[str, Payment]] = defaultdict(dict)
    for payment in payments:
        by_booking[payment.booking_id][payment.kind] = payment
    bookings = Booking.objects.filter(pk__in=list(by_booking))
    if since is not None:
        bookings = bookings | Booking.objects.filter(created_at__gte=since)
    for booking in bookings.distinct():
        report.bookings += 1
        rows = by_booking.get(booking.pk, {})
        charge, refund = rows.get(Payment.Kind.CHARGE), rows.get(Payment.Kind.REFUND)
        report.pending += sum(1 for row in rows.values() if row.state == Payment.State.PENDING)
        if charge is None:
            out.append(Mismatch("missing_charge", booking.pk, "a booking without a charge"))
            continue
        total = amount_to_minor(amount=booking.total_price, currency=booking.currency)
        for row in rows.values():
            if (row.amount_minor, row.currency) != (total, booking.currency):
                out.append(
                    Mismatch(
                        "amount_mismatch",
                        booking.pk,
                        f"{row.kind} {row.amount_minor} {row.currency} != {total} {booking.currency}",
                    )
                )
            if row.state == Payment.State.DEAD:
                out.append(Mismatch("dead_payment", booking.pk, f"{row.kind} {row.pk}: {row.last_error[:200]}"))
        report.charges_captured += charge.state == Payment.State.SUCCEEDED
        report.charges_declined += charge.state == Payment.State.FAILED
        report.refunds += refund is not None and refund.state == Payment.State.SUCCEEDED
        if booking.status == Booking.Status.CONFIRMED and charge.state == Payment.State.FAILED:
            out.append(Mismatch("declined_but_booked", booking.pk, "charge declined, booking still confirmed"))
        refunded = refund is not None and refund.state == Payment.State.SUCCEEDED
        if booking.status == Booking.Status.CANCELLED and charge.state == Payment.State.SUCCEEDED and not refunded:
            state = refund.state if refund else "none"
            out.append(Mismatch("paid_cancelled_no_refund", booking.pk, f"refund {state}"))
        if refund is not None and refund.state == Payment.State.SUCCEEDED and charge.state != Payment.State.SUCCEEDED:
            out.append(Mismatch("refund_without_charge", booking.pk, f"charge {charge.state}"))
        expected = _expected_payment_status(charge, refund)
        if booking.payment_status != expected and not any(r.state == Payment.State.PENDING for r in rows.values()):
            out.append(Mismatch("payment_status_mismatch", booking.pk, f"{booking.payment_status} != {expected}"))
    _reconcile_gateway(report, payments, list(gateway_records))
    return report


def _reconcile_gateway(report: ReconcileReport, payments: list[Payment], records: list[GatewayRecord]) -> None:
    out = report.mismatches
    ours = {payment.idempotency_key: payment for payment in payments}
    theirs = {record.idempotency_key: record for record in records}
    succeeded_charges: dict[str, list[GatewayRecord]] = defaultdict(list)
    for record in records:
        if record.status != "succeeded":
            continue
        if record.kind == "charge":
            report.gateway_charges += 1
            succeeded_charges[record.booking_id].append(record)
        payment = ours.get(record.idempotency_key)
        if payment is None or payment.state == Payment.State.PENDING:
            if payment is None:
                out.append(Mismatch("gateway_unrecorded", record.booking_id, f"{record.kind} {record.reference}"))
            continue
        if payment.state != Payment.State.SUCCEEDED:
            out.append(
                Mismatch("gateway_state_mismatch", record.booking_id, f"{record.reference}: ours {payment.state}")
            )
        elif payment.provider_reference != record.reference or payment.amount_minor != record.amount_minor:
            out.append(Mismatch("gateway_reference_mismatch", record.booking_id, f"{record.reference}"))
    for booking_id, charges in succeeded_charges.items():
        if len(charges) > 1:
            out.append(Mismatch("double_charge", booking_id, ", ".join(c.reference for c in charges)))
    for key, payment in ours.items():
        if payment.state == Payment.State.SUCCEEDED and key not in theirs:
            out.append(
                Mismatch("missing_at_gateway", payment.booking_id, f"{payment.kind} {payment.provider_reference}")
            )
