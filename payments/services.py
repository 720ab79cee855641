"""Payment writes: charges and refunds from booking events, their gateway calls, compensation.

Guarantees:

- **No double charge.** One charge row per booking (unique ``(booking, kind)``) and one
  idempotency key per row (``charge:<booking id>``, ``refund:<booking id>``), sent on every
  attempt: a retry after a timeout, a redelivered task or a worker killed between "charged" and
  "recorded" gets the gateway's stored answer, the same charge.
- **No lost payment.** Each attempt is counted and committed BEFORE the gateway call (so
  ``attempts == 0`` proves the gateway never heard of it); transient errors are retried by the
  task with backoff, then the row is ``dead`` (admin re-drive); the sweep re-dispatches pending
  rows whose task was lost.
- **Outcome and event commit together.** Captured: booking ``paid`` + ``payment.captured``.
  Declined: compensation in ONE transaction, booking cancelled (reason ``payment_declined``),
  seats released, ``tour.cancelled`` and ``payment.failed`` recorded. Refunded: booking
  ``refunded`` + ``payment.refunded``.
- **No cancelled-and-paid without a refund.** A cancellation (not ours) creates the refund row; the
  refund waits for the charge to settle, and a charge settling on a cancelled booking kicks it.

No lock is held across a gateway call: claim (count the attempt), call, record. Lock order:
departure, booking, payment (as in ``bookings.services``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import timedelta
from functools import partial
from typing import Literal

from celery import signature
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bookings.event_schema import PAYMENT_CAPTURED, PAYMENT_FAILED, PAYMENT_REFUNDED, TOUR_BOOKED, BookingEventPayload
from bookings.events import booking_payment_event_payload
from bookings.models import Booking
from bookings.services import booking_cancel_for_payment_failure, booking_payment_status_record
from messaging.envelope import Event
from messaging.events import routing_key_for
from messaging.services import outbox_event_record
from payments.gateway import (
    GatewayError,
    GatewayResult,
    PaymentDeclined,
    TransientGatewayError,
    amount_to_minor,
    gateway_get,
)
from payments.metrics import (
    PAYMENT_GATEWAY_LATENCY,
    PAYMENTS_CAPTURED,
    PAYMENTS_DEAD,
    PAYMENTS_DECLINED,
    PAYMENTS_REFUNDED,
)
from payments.models import Payment
from payments.queries import ClaimedCharge, charge_captured_record, charge_claim
from tourapp.correlation import correlation_scope, get_correlation_id

logger = logging.getLogger(__name__)

Outcome = Literal["captured", "declined", "refunded", "skipped", "waiting", "retry", "dead", "noop"]


def payment_token_for(*, booking: Booking) -> str:
    """The payment token the booking was made with, else ``PAYMENTS_DEFAULT_TOKEN``."""
    return booking.payment_token or settings.PAYMENTS_DEFAULT_TOKEN


def charge_idempotency_key(booking_id: int) -> str:
    return f"charge:{booking_id}"


def refund_idempotency_key(booking_id: int) -> str:
    return f"refund:{booking_id}"


def payments_create_for_events(*, events: Sequence[Event[BookingEventPayload]]) -> list[int]:
    """Charge rows for ``tour.booked``, refund rows for ``tour.cancelled`` (not for our own
    compensation); dispatch their tasks on commit. Runs inside the inbox transaction.

    Idempotent: rows that exist already (unique booking + kind) are left alone. Bookings this
    database does not know (a foreign producer's) are skipped: there is nothing to charge.
    """
    ids = {int(event.payload.booking_id) for event in events if event.payload.booking_id.isdigit()}
    bookings = Booking.objects.in_bulk(list(ids))
    rows: list[Payment] = []
    for event in events:
        booking_id = event.payload.booking_id
        booking = bookings.get(int(booking_id)) if booking_id.isdigit() else None
        if booking is None:
            logger.warning("payments: no booking %s here, nothing to charge or refund", booking_id[:64])
            continue
        amount = amount_to_minor(amount=booking.total_price, currency=booking.currency)
        common = {"booking": booking, "amount_minor": amount, "currency": booking.currency}
        common |= {"provider": settings.PAYMENTS_GATEWAY, "correlation_id": event.correlation_id}
        if event.event_type == TOUR_BOOKED:
            key = charge_idempotency_key(booking.pk)
            token = payment_token_for(booking=booking)
            rows.append(Payment(kind=Payment.Kind.CHARGE, idempotency_key=key, payment_token=token, **common))
        elif booking.cancellation_reason != Booking.CancellationReason.PAYMENT_DECLINED:
            rows.append(Payment(kind=Payment.Kind.REFUND, idempotency_key=refund_idempotency_key(booking.pk), **common))
    if not rows:
        return []
    Payment.objects.bulk_create(rows, ignore_conflicts=True)
    pending = list(
        Payment.objects.filter(idempotency_key__in=[row.idempotency_key for row in rows], state=Payment.State.PENDING)
        .order_by("pk")
        .values_list("pk", "kind", "booking_id", "correlation_id")
    )
    # robust: the rows are committed whatever happens to the dispatch (Celery broker down); the sweep heals it.
    transaction.on_commit(partial(payments_dispatch, pending=pending), robust=True)
    return [pk for pk, *_ in pending]


# Enqueued by their registered names: payments.tasks imports this module, never the reverse.
PAYMENT_CHARGE_TASK = "payments.tasks.payment_charge_task"
PAYMENT_REFUND_TASK = "payments.tasks.payment_refund_task"


def payments_dispatch(*, pending: Sequence[tuple[int, str, int, str]]) -> None:
    """One Celery task per payment, under the payment's correlation id."""
    for pk, kind, booking_id, correlation_id in pending:
        with correlation_scope(correlation_id or None, booking_id=booking_id, payment_id=pk):
            signature(PAYMENT_CHARGE_TASK if kind == Payment.Kind.CHARGE else PAYMENT_REFUND_TASK).delay(pk)


def payment_charge(*, payment_id: int, final_attempt: bool) -> Outcome:
    """One attempt at a pending charge; ``retry`` asks the caller (the task) to try again later.

    Runs under the correlation id of the booking's event, so compensation events share it. The
    common case, a pending charge of a live booking, is claimed by one statement that returns
    what the call needs; every other case takes the locking path."""
    claimed = charge_claim(payment_id=payment_id, now=timezone.now())
    if claimed is None:
        with _payment_scope(payment_id):
            return _payment_charge(payment_id=payment_id, final_attempt=final_attempt)
    scope = correlation_scope(
        claimed.correlation_id or get_correlation_id(), booking_id=claimed.booking_id, payment_id=payment_id
    )
    with scope:
        return _charge_call(claimed, final_attempt=final_attempt)


def payment_refund(*, payment_id: int, final_attempt: bool) -> Outcome:
    """One attempt at a pending refund; ``waiting`` while its charge has not settled (the charge kicks it)."""
    with _payment_scope(payment_id):
        return _payment_refund(payment_id=payment_id, final_attempt=final_attempt)


def _payment_scope(payment_id: int) -> AbstractContextManager[str]:
    row = Payment.objects.filter(pk=payment_id).values_list("correlation_id", "booking_id").first()
    correlation_id, booking_id = row if row else ("", None)
    return correlation_scope(correlation_id or get_correlation_id(), booking_id=booking_id, payment_id=payment_id)


def _payment_charge(*, payment_id: int, final_attempt: bool) -> Outcome:
    with transaction.atomic():
        payment = _lock(payment_id, kind=Payment.Kind.CHARGE)
        if payment is None or payment.state != Payment.State.PENDING:
            return "noop"
        if payment.booking.status == Booking.Status.CANCELLED and payment.attempts == 0:
            # Cancelled before any attempt: the gateway never heard of it, nothing to charge or refund.
            _complete(payment, Payment.State.SKIPPED)
            transaction.on_commit(partial(_refund_kick, booking_id=payment.booking_id))
            return "skipped"
        _count_attempt(payment)
    claimed = ClaimedCharge(
        payment_id=payment.pk,
        booking_id=payment.booking_id,
        correlation_id=payment.correlation_id,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        idempotency_key=payment.idempotency_key,
        payment_token=payment.payment_token,
    )
    return _charge_call(claimed, final_attempt=final_attempt)


def _charge_call(claimed: ClaimedCharge, *, final_attempt: bool) -> Outcome:
    """The gateway call of a claimed charge (its attempt committed), then its record."""
    try:
        result = _gateway_timed(
            "charge",
            lambda: gateway_get().charge(
                amount_minor=claimed.amount_minor,
                currency=claimed.currency,
                idempotency_key=claimed.idempotency_key,
                payment_token=claimed.payment_token,
                booking_id=claimed.booking_id,
            ),
        )
    except PaymentDeclined as exc:
        return _charge_record_declined(
            payment_id=claimed.payment_id, decline_code=exc.decline_code, reference=exc.reference
        )
    except GatewayError as exc:
        return _record_error(payment_id=claimed.payment_id, exc=exc, final_attempt=final_attempt)
    return _charge_record_captured(claimed, result=result)


def _payment_refund(*, payment_id: int, final_attempt: bool) -> Outcome:
    with transaction.atomic():
        refund = _lock(payment_id, kind=Payment.Kind.REFUND)
        if refund is None or refund.state != Payment.State.PENDING:
            return "noop"
        charge = Payment.objects.filter(booking_id=refund.booking_id, kind=Payment.Kind.CHARGE).first()
        if charge is None or charge.state in (Payment.State.FAILED, Payment.State.SKIPPED):
            _complete(refund, Payment.State.SKIPPED)  # no money was taken: nothing to give back
            return "skipped"
        if charge.state != Payment.State.SUCCEEDED:
            return "waiting"
        _count_attempt(refund)
    try:
        result = _gateway_timed(
            "refund",
            lambda: gateway_get().refund(
                charge_reference=charge.provider_reference,
                amount_minor=refund.amount_minor,
                currency=refund.currency,
                idempotency_key=refund.idempotency_key,
                booking_id=refund.booking_id,
            ),
        )
    except GatewayError as exc:
        # A refund is never "declined" for good: a provider's no needs a human (dead, in the admin).
        return _record_error(payment_id=payment_id, exc=exc, final_attempt=final_attempt)
    return _refund_record(payment_id=payment_id, result=result)


_SUCCESS_OUTCOME = {"charge": "captured", "refund": "refunded"}


def _gateway_timed(operation: Literal["charge", "refund"], call: Callable[[], GatewayResult]) -> GatewayResult:
    """Make one gateway call, observed in ``PAYMENT_GATEWAY_LATENCY`` by operation and outcome."""
    started = time.monotonic()
    outcome = "error"
    try:
        result = call()
        outcome = _SUCCESS_OUTCOME[operation]
        return result
    except PaymentDeclined:
        outcome = "declined"
        raise
    finally:
        PAYMENT_GATEWAY_LATENCY.labels(operation=operation, outcome=outcome).observe(time.monotonic() - started)


def payments_redrive(*, payment_ids: Sequence[int]) -> int:
    """Dead payments back to pending, dispatched on commit (their attempts keep counting)."""
    with transaction.atomic():
        rows = list(
            Payment.objects.select_for_update()
            .filter(pk__in=list(payment_ids), state=Payment.State.DEAD)
            .order_by("pk")
            .values_list("pk", "kind", "booking_id", "correlation_id")
        )
        Payment.objects.filter(pk__in=[row[0] for row in rows]).update(
            state=Payment.State.PENDING, updated_at=timezone.now()
        )
        transaction.on_commit(partial(payments_dispatch, pending=rows))
    if rows:
        logger.info("payments: re-drove %d dead payment(s)", len(rows))
    return len(rows)


def payments_sweep(*, older_than: timedelta) -> int:
    """Re-dispatch pending payments untouched for ``older_than`` (a task lost, a dispatch that failed)."""
    cutoff = timezone.now() - older_than
    pending = list(
        Payment.objects.filter(state=Payment.State.PENDING, updated_at__lt=cutoff)
        .order_by("pk")
        .values_list("pk", "kind", "booking_id", "correlation_id")[:1000]
    )
    payments_dispatch(pending=pending)
    if pending:
        logger.warning("payments: re-dispatched %d stale pending payment(s)", len(pending))
    return len(pending)


# ------------------------------------------------------------------ recording outcomes


class _AlreadyRecorded(Exception):
    """Another copy of the task recorded this payment first: roll back, change nothing."""


def _charge_record_captured(claimed: ClaimedCharge, *, result: GatewayResult) -> Outcome:
    if (result.amount_minor, result.currency) != (claimed.amount_minor, claimed.currency):
        error = GatewayError(
            f"the gateway charged {result.amount_minor} {result.currency} for {claimed.amount_minor} {claimed.currency}"
        )
        return _record_error(payment_id=claimed.payment_id, exc=error, final_attempt=True)
    now = timezone.now()
    with transaction.atomic():
        booking = booking_payment_status_record(
            booking_id=claimed.booking_id, payment_status=Booking.PaymentStatus.PAID
        )
        # Conditional: of two copies of the task, only the first records (the booking lock orders them).
        if not charge_captured_record(payment_id=claimed.payment_id, reference=result.reference, now=now):
            transaction.set_rollback(True)
            return "noop"
        payment = Payment(
            pk=claimed.payment_id,
            booking_id=claimed.booking_id,
            kind=Payment.Kind.CHARGE,
            amount_minor=claimed.amount_minor,
            currency=claimed.currency,
            provider_reference=result.reference,
        )
        _record_event(booking=booking, payment=payment, event_type=PAYMENT_CAPTURED)
        if booking.status == Booking.Status.CANCELLED:
            transaction.on_commit(partial(_refund_kick, booking_id=claimed.booking_id))
    PAYMENTS_CAPTURED.labels(currency=claimed.currency).inc()
    return "captured"


def _charge_record_declined(*, payment_id: int, decline_code: str, reference: str) -> Outcome:
    booking_id = Payment.objects.values_list("booking_id", flat=True).get(pk=payment_id)
    try:
        with transaction.atomic():
            booking = booking_cancel_for_payment_failure(
                booking_id=booking_id, reason=Booking.CancellationReason.PAYMENT_DECLINED
            )
            payment = _lock(payment_id, kind=Payment.Kind.CHARGE)
            if payment is None or payment.state != Payment.State.PENDING:
                raise _AlreadyRecorded
            payment.decline_code = decline_code[:64]
            payment.provider_reference = reference[:64]
            _complete(payment, Payment.State.FAILED)
            _record_event(booking=booking, payment=payment, event_type=PAYMENT_FAILED)
            # A refund asked for by an earlier cancellation now has nothing to give back.
            transaction.on_commit(partial(_refund_kick, booking_id=booking_id))
    except _AlreadyRecorded:
        return "noop"
    PAYMENTS_DECLINED.labels(currency=payment.currency).inc()
    logger.info("payments: charge %s declined (%s); booking %s compensated", payment_id, decline_code, booking_id)
    return "declined"


def _refund_record(*, payment_id: int, result: GatewayResult) -> Outcome:
    booking_id = Payment.objects.values_list("booking_id", flat=True).get(pk=payment_id)
    with transaction.atomic():
        booking = booking_payment_status_record(booking_id=booking_id, payment_status=Booking.PaymentStatus.REFUNDED)
        refund = _lock(payment_id, kind=Payment.Kind.REFUND)
        if refund is None or refund.state != Payment.State.PENDING:
            transaction.set_rollback(True)
            return "noop"
        refund.provider_reference = result.reference
        _complete(refund, Payment.State.SUCCEEDED)
        _record_event(booking=booking, payment=refund, event_type=PAYMENT_REFUNDED)
    PAYMENTS_REFUNDED.labels(currency=refund.currency).inc()
    return "refunded"


def _record_error(*, payment_id: int, exc: GatewayError, final_attempt: bool) -> Outcome:
    dead = final_attempt or not isinstance(exc, TransientGatewayError)
    error = f"{type(exc).__name__}: {exc}"[:2000]
    changes = {"last_error": error, "updated_at": timezone.now()}
    if dead:
        changes["state"] = Payment.State.DEAD
    with transaction.atomic():
        updated = Payment.objects.filter(pk=payment_id, state=Payment.State.PENDING).update(**changes)
    if not updated:
        return "noop"
    if dead:
        kind = Payment.objects.values_list("kind", flat=True).get(pk=payment_id)
        PAYMENTS_DEAD.labels(kind=kind).inc()
        logger.error("payments: payment %s is dead (re-drive it from the admin): %s", payment_id, error)
        return "dead"
    logger.warning("payments: payment %s will be retried: %s", payment_id, error)
    return "retry"


def _lock(payment_id: int, *, kind: str) -> Payment | None:
    return (
        Payment.objects.select_for_update(of=("self",))
        .select_related("booking")
        .filter(pk=payment_id, kind=kind)
        .first()
    )


def _count_attempt(payment: Payment) -> None:
    payment.attempts += 1
    payment.save(update_fields=["attempts", "updated_at"])


def _complete(payment: Payment, state: str) -> None:
    payment.state = state
    payment.completed_at = timezone.now()
    payment.last_error = ""
    payment.save(
        update_fields=["state", "completed_at", "last_error", "provider_reference", "decline_code", "updated_at"]
    )


def _refund_kick(*, booking_id: int) -> None:
    """Dispatch the booking's pending refund, if there is one (after its charge settled)."""
    pending = list(
        Payment.objects.filter(
            booking_id=booking_id, kind=Payment.Kind.REFUND, state=Payment.State.PENDING
        ).values_list("pk", "kind", "booking_id", "correlation_id")
    )
    payments_dispatch(pending=pending)


def _record_event(*, booking: Booking, payment: Payment, event_type: str) -> None:
    now = timezone.now()
    event = outbox_event_record(
        aggregate_type="booking",
        aggregate_id=str(booking.pk),
        event_type=event_type,
        routing_key=routing_key_for(event_type, booking.tier),
        payload=booking_payment_event_payload(
            booking=booking,
            occurred_at=now,
            payment={
                "paymentId": payment.pk,
                "paymentKind": payment.kind,
                "amountMinor": payment.amount_minor,
                "providerReference": payment.provider_reference,
                "declineCode": payment.decline_code,
            },
        ),
    )
    logger.info(
        "booking %s: %s recorded (payment %s)",
        booking.pk,
        event_type,
        payment.pk,
        extra={"booking_id": booking.pk, "payment_id": payment.pk, "event_id": str(event.event_id)},
    )
