"""Hand-written SQL of the payments app: the claim and the record of a charge, run once per charge."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache

from django.db import connection

from bookings.models import Booking
from payments.models import Payment
from tourapp.db import prepared_cursor


@dataclass(frozen=True)
class ClaimedCharge:
    """What the gateway call and its record need, returned by the claim itself."""

    payment_id: int
    booking_id: int
    correlation_id: str
    amount_minor: int
    currency: str
    idempotency_key: str
    payment_token: str


@cache
def _charge_claim_sql() -> str:
    payment = connection.ops.quote_name(Payment._meta.db_table)
    booking = connection.ops.quote_name(Booking._meta.db_table)
    return f"""
    UPDATE {payment} AS p SET attempts = p.attempts + 1, updated_at = %(now)s
    FROM {booking} AS b
    WHERE p.id = %(id)s AND p.kind = %(charge)s AND p.state = %(pending)s AND b.id = p.booking_id
      AND NOT (b.status = %(cancelled)s AND p.attempts = 0)
    RETURNING p.booking_id, p.correlation_id, p.amount_minor, p.currency, p.idempotency_key, p.payment_token
    """  # noqa: S608 - names from model meta, values are parameters


def charge_claim(*, payment_id: int, now: datetime) -> ClaimedCharge | None:
    """Count the attempt of a pending charge in one autocommit statement (the row lock lasts only
    that statement); None when there is nothing to charge as is (not pending any more, or its
    booking was cancelled before any attempt): the caller then takes the locking path."""
    params = {
        "id": payment_id,
        "now": now,
        "charge": Payment.Kind.CHARGE,
        "pending": Payment.State.PENDING,
        "cancelled": Booking.Status.CANCELLED,
    }
    with prepared_cursor() as cursor:
        cursor.execute(_charge_claim_sql(), params, prepare=True)
        row = cursor.fetchone()
    return None if row is None else ClaimedCharge(payment_id, *row)


@cache
def _charge_captured_sql() -> str:
    payment = connection.ops.quote_name(Payment._meta.db_table)
    return f"""
    UPDATE {payment}
    SET state = %(succeeded)s, completed_at = %(now)s, last_error = '', provider_reference = %(reference)s,
        updated_at = %(now)s
    WHERE id = %(id)s AND state = %(pending)s
    """  # noqa: S608 - names from model meta, values are parameters


def charge_captured_record(*, payment_id: int, reference: str, now: datetime) -> bool:
    """Mark a pending charge succeeded; False when it was not pending any more (another copy of the
    task recorded it first). Run inside the record's transaction, under the booking's lock."""
    params = {
        "id": payment_id,
        "now": now,
        "reference": reference,
        "succeeded": Payment.State.SUCCEEDED,
        "pending": Payment.State.PENDING,
    }
    with prepared_cursor() as cursor:
        cursor.execute(_charge_captured_sql(), params, prepare=True)
        return cursor.rowcount == 1
