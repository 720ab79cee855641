"""Reads of bookings. Owners see only their own; anyone else's booking is "not found"."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import NamedTuple

from django.contrib.auth.models import User
from django.db import connection
from django.db.models import QuerySet

from availability.models import Departure, Tour
from bookings.models import Booking
from tourapp.db import select_columns, server_side_cursor
from tourapp.exceptions import NotFound


def booking_list_for_user(*, user: User) -> QuerySet[Booking]:
    """The user's bookings, newest first, with departure and tour joined."""
    return Booking.objects.filter(user=user).select_related("departure__tour").order_by("-created_at", "-id")


def booking_list_filter(
    *,
    bookings: QuerySet[Booking],
    status: str | None = None,
    payment_status: str | None = None,
    departure_id: int | None = None,
    tour_id: int | None = None,
    starts_after: datetime | None = None,
    starts_before: datetime | None = None,
) -> QuerySet[Booking]:
    """``bookings`` (e.g. ``booking_list_for_user``) narrowed by every filter that is not None, order
    kept. Only ever narrows: a filter cannot reach a booking outside ``bookings``. The departure date
    range is half-open: ``starts_after <= starts_at < starts_before``."""
    conditions: dict[str, object] = {
        "status": status,
        "payment_status": payment_status,
        "departure_id": departure_id,
        "departure__tour_id": tour_id,
        "departure__starts_at__gte": starts_after,
        "departure__starts_at__lt": starts_before,
    }
    given = {lookup: value for lookup, value in conditions.items() if value is not None}
    return bookings.filter(**given) if given else bookings


def booking_get_for_user(*, user: User, booking_id: int) -> Booking:
    """The user's booking ``booking_id``; ``NotFound`` if it is missing or belongs to someone else."""
    try:
        return booking_list_for_user(user=user).get(pk=booking_id)
    except Booking.DoesNotExist:
        raise NotFound(f"No booking {booking_id} for this user.") from None


def booking_get_by_idempotency_key(*, user: User, idempotency_key: str) -> Booking | None:
    return Booking.objects.select_related("departure__tour").filter(user=user, idempotency_key=idempotency_key).first()


@cache
def _departure_lock_for_booking_statement() -> tuple[str, list[str], list[str]]:
    departure_columns, departure_names = select_columns(Departure, "d")
    tour_columns, tour_names = select_columns(Tour, "t")
    sql = f"""
SELECT {departure_columns}, {tour_columns},
       nextval(pg_get_serial_sequence('{Booking._meta.db_table}', '{Booking._meta.pk.column}'))
FROM {Departure._meta.db_table} d JOIN {Tour._meta.db_table} t ON t.id = d.tour_id
WHERE d.id = %(departure_id)s
FOR UPDATE OF d
"""  # noqa: S608 - names come from model meta, values are parameters
    return sql, departure_names, tour_names


@cache
def _seats_held_statement() -> str:
    return f"""
SELECT COALESCE(SUM(seats), 0) FROM {Booking._meta.db_table}
WHERE user_id = %(user_id)s AND departure_id = %(departure_id)s AND status = %(confirmed)s
"""  # noqa: S608 - names come from model meta, values are parameters


class BookingLock(NamedTuple):
    departure: Departure | None  # locked FOR UPDATE, tour joined; None if there is no such departure
    held: int  # seats the user holds in confirmed bookings on it, read under the lock
    booking_id: int | None  # a fresh id for the new booking (from its sequence), None without a departure


def departure_lock_for_booking(*, departure_id: int, user: User) -> BookingLock:
    """Lock the departure ``FOR UPDATE`` (only its row; tour joined) and, in the same round trip,
    reserve the new booking's id, so the booking and its outbox event can be written by one
    statement (``messaging.services.outbox_event_record(along_with=...)``). An id reserved for a
    booking that is then refused is simply skipped, as after any rollback.

    The seats ``user`` already holds on the departure are then counted by a second statement,
    AFTER the lock is granted: a subquery inside the locking statement would be evaluated on that
    statement's snapshot, taken before the lock wait, and miss the bookings committed by the
    transactions it waited for (one user's parallel requests each saw 0 held and together passed
    the cap). Under READ COMMITTED the second statement gets a fresh snapshot that includes them.

    Hand-written, built once per process: compiling the equivalent annotated ORM query was half of
    a booking request's CPU. Lock order as ``availability.selectors.departure_lock_for_update``.
    """
    sql, departure_names, tour_names = _departure_lock_for_booking_statement()
    params = {"user_id": user.pk, "departure_id": departure_id, "confirmed": Booking.Status.CONFIRMED.value}
    with server_side_cursor() as cursor:
        row = cursor.execute(sql, {"departure_id": departure_id}, prepare=True).fetchone()
        if row is None:
            return BookingLock(None, 0, None)
        held_row = cursor.execute(_seats_held_statement(), params, prepare=True).fetchone()
    held = held_row[0] if held_row is not None else 0  # an aggregate always returns its one row
    split = len(departure_names)
    departure = Departure.from_db(connection.alias, departure_names, row[:split])
    departure.tour = Tour.from_db(connection.alias, tour_names, row[split:-1])
    return BookingLock(departure, held, row[-1])


def booking_lock_for_update(*, booking_id: int) -> QuerySet[Booking]:
    """The booking row locked ``FOR UPDATE``. Lock order: take its departure's lock FIRST."""
    return Booking.objects.select_for_update(of=("self",)).select_related("user").filter(pk=booking_id)
