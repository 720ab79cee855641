"""Availability's hand-written SQL, and THE departure lock.

Lock order (every writer follows it, so two transactions never wait on each other in a cycle):

1. the departure row, with ``departure_lock`` (no other code locks ``Departure`` rows; a
   transaction locks one departure: one that ever needs several must lock them in primary-key
   order, and that order belongs here);
2. then booking rows (``bookings.selectors.booking_lock_for_update``).

The statements are built once per process from the models' metadata and run prepared
(``tourapp.db.prepared_cursor``): they run in every booking, where compiling the equivalent ORM
queries cost more CPU than the database work. Each agrees with the ORM query it replaces
(``availability/tests/test_queries.py``).
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

from django.db import connection, models

from availability.models import Departure, Tour
from tourapp.db import prepared_cursor, select_columns


class DepartureLock(NamedTuple):
    departure: Departure | None  # locked FOR UPDATE, tour joined; None if there is no such departure
    reserved_pk: int | None  # the next primary key of ``reserve_pk_of``, if asked and the departure exists


def departure_lock(*, departure_id: int, reserve_pk_of: type[models.Model] | None = None) -> DepartureLock:
    """Lock the departure ``FOR UPDATE`` (only its row; its tour is joined, unlocked) inside the
    caller's ``transaction.atomic()``.

    ``reserve_pk_of``: also take the next value of that model's primary-key sequence in the same
    round trip, so a row about the departure (a booking) can be written with its id known up
    front. An id reserved for a row that is then not written is simply skipped, as after any
    rollback.
    """
    sql, departure_names, tour_names = _departure_lock_statement(reserve_pk_of)
    with prepared_cursor() as cursor:
        row = cursor.execute(sql, {"departure_id": departure_id}, prepare=True).fetchone()
    if row is None:
        return DepartureLock(None, None)
    split = len(departure_names)
    end = split + len(tour_names)
    departure = Departure.from_db(connection.alias, departure_names, row[:split])
    departure.tour = Tour.from_db(connection.alias, tour_names, row[split:end])
    return DepartureLock(departure, row[end] if reserve_pk_of is not None else None)


@cache
def _departure_lock_statement(reserve_pk_of: type[models.Model] | None) -> tuple[str, list[str], list[str]]:
    departure_columns, departure_names = select_columns(Departure, "d")
    tour_columns, tour_names = select_columns(Tour, "t")
    reserve = ""
    if reserve_pk_of is not None:
        sequence = f"pg_get_serial_sequence('{reserve_pk_of._meta.db_table}', '{reserve_pk_of._meta.pk.column}')"
        reserve = f", nextval({sequence})"
    sql = f"""
SELECT {departure_columns}, {tour_columns}{reserve}
FROM {Departure._meta.db_table} d JOIN {Tour._meta.db_table} t ON t.id = d.tour_id
WHERE d.id = %(departure_id)s
FOR UPDATE OF d
"""  # noqa: S608 - names come from model meta, values are parameters
    return sql, departure_names, tour_names


# ``Departure.objects.filter(pk=..).update(seats_reserved=F("seats_reserved") + seats)``, written out.
_ADD_SEATS_SQL = f"UPDATE {Departure._meta.db_table} SET seats_reserved = seats_reserved + %s WHERE id = %s"  # noqa: S608 - table name from model meta, values are parameters


def departure_add_seats(*, departure_id: int, seats: int) -> None:
    """Add ``seats`` (negative: remove) to the departure's reserved seats; the capacity
    ``CheckConstraint`` raises ``IntegrityError`` when the result is out of range."""
    with prepared_cursor() as cursor:
        cursor.execute(_ADD_SEATS_SQL, [seats, departure_id], prepare=True)
