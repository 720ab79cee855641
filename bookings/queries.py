"""Bookings' hand-written SQL: the statements every booking request runs.

Built once per process from the models' metadata and run prepared (``tourapp.db.prepared_cursor``):
compiling the equivalent ORM queries cost more CPU than the database work. Each agrees with the
ORM it replaces (``bookings/tests/test_queries.py``).

``booking_insert_with_event`` writes the booking row without ``save()`` and without the model
signals: ``Booking`` must have neither a ``save()`` override nor ``pre_save``/``post_save``
receivers (``bookings/tests/test_fast_path_guard.py``); logic that belongs to a booking write goes
into ``bookings.services``.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from availability.models import Departure, Tour
from bookings.models import Booking
from messaging.models import OutboxEvent
from messaging.queries import (
    OUTBOX_EVENT_INSERT_CTES,
    OUTBOX_EVENT_INSERT_RESULT,
    outbox_event_insert_params,
    outbox_event_inserted,
)
from tourapp.db import (
    instance_from_row,
    mark_in_database,
    model_insert_params,
    model_insert_sql,
    prepared_cursor,
    select_columns,
)

BOOKING_PARAM_PREFIX = "booking_"  # the booking row's parameter names; the outbox fragment's are ``outbox_*``


@cache
def _seats_held_statement() -> str:
    return f"""
SELECT COALESCE(SUM(seats), 0) FROM {Booking._meta.db_table}
WHERE user_id = %(user_id)s AND departure_id = %(departure_id)s AND status = %(confirmed)s
"""  # noqa: S608 - names come from model meta, values are parameters


def booking_seats_held(*, user_id: int, departure_id: int) -> int:
    """Seats ``user_id`` holds in confirmed bookings on the departure.

    Run it AFTER the departure lock is granted, as a statement of its own: inside the locking
    statement it would read that statement's snapshot, taken before the lock wait, and miss the
    bookings committed by the transactions it waited for (one user's parallel requests would each
    see 0 held and together pass the cap). Under READ COMMITTED this statement gets a fresh
    snapshot that includes them.
    """
    params = {"user_id": user_id, "departure_id": departure_id, "confirmed": Booking.Status.CONFIRMED.value}
    with prepared_cursor() as cursor:
        row = cursor.execute(_seats_held_statement(), params, prepare=True).fetchone()
    return int(row[0]) if row is not None else 0  # an aggregate always returns its one row


def booking_insert_bind(*, booking: Booking) -> dict[str, Any]:
    """The booking row's values, bound as ``save()`` binds them: defaults and ``auto_now_add`` run
    now, so ``booking.created_at`` is set before the event about the booking is built. Its id must
    be reserved already (``availability.queries.departure_lock(reserve_pk_of=Booking)``)."""
    return model_insert_params(booking, param_prefix=BOOKING_PARAM_PREFIX)


@cache
def _booking_insert_with_event_statement() -> str:
    # PostgreSQL runs every data-modifying CTE exactly once, whether or not the query reads it.
    booking_insert = model_insert_sql(Booking, param_prefix=BOOKING_PARAM_PREFIX)
    return f"WITH booking AS ({booking_insert}),{OUTBOX_EVENT_INSERT_CTES}\n{OUTBOX_EVENT_INSERT_RESULT}"


def booking_insert_with_event(*, booking: Booking, values: dict[str, Any], event: OutboxEvent) -> None:
    """Insert the new booking (``values`` from ``booking_insert_bind``) and its outbox event (built by
    ``messaging.services.outbox_event_build``, deliveries and commit-time kick included) in ONE
    statement: one round trip, and the two stand or fall together (a constraint the booking row
    violates raises ``IntegrityError`` here and writes neither). Both instances are left saved."""
    with prepared_cursor() as cursor:
        cursor.execute(
            _booking_insert_with_event_statement(), {**values, **outbox_event_insert_params(event)}, prepare=True
        )
        outbox_event_inserted(event, cursor.fetchone())
    mark_in_database(booking)


@cache
def _payment_status_set_statement() -> tuple[str, list[str], list[str], list[str]]:
    booking_columns, booking_names = select_columns(Booking, "b")
    departure_columns, departure_names = select_columns(Departure, "d")
    tour_columns, tour_names = select_columns(Tour, "t")
    sql = f"""
    UPDATE {Booking._meta.db_table} AS b
    SET payment_status = %(status)s::varchar,
        updated_at = CASE WHEN b.payment_status = %(status)s::varchar THEN b.updated_at ELSE %(now)s END
    FROM {Departure._meta.db_table} AS d JOIN {Tour._meta.db_table} AS t ON t.id = d.tour_id
    WHERE b.id = %(id)s AND d.id = b.departure_id
    RETURNING {booking_columns}, {departure_columns}, {tour_columns}
    """  # noqa: S608 - names from model meta, values are parameters
    return sql, booking_names, departure_names, tour_names


def booking_payment_status_set(*, booking_id: int, payment_status: str, now: datetime) -> Booking:
    """Set the booking's payment status (its ``updated_at`` only when that changes), taking its row
    lock until the caller's transaction ends; returns it with its departure and tour, as
    ``select_for_update().select_related("departure__tour")`` and ``save()`` would, in one round trip."""
    sql, booking_names, departure_names, tour_names = _payment_status_set_statement()
    with prepared_cursor() as cursor:
        cursor.execute(sql, {"id": booking_id, "status": payment_status, "now": now}, prepare=True)
        row = cursor.fetchone()
    if row is None:
        raise Booking.DoesNotExist(f"no booking {booking_id}")
    split = len(booking_names)
    end = split + len(departure_names)
    booking = instance_from_row(Booking, booking_names, row[:split])
    booking.departure = instance_from_row(Departure, departure_names, row[split:end])
    booking.departure.tour = instance_from_row(Tour, tour_names, row[end:])
    return booking
