"""Seat reservation on a departure. The database has the last word.

``Departure`` carries a ``CheckConstraint`` ``0 <= seats_reserved <= capacity``: even if the
code here were wrong, overbooking fails the transaction. The checks below only give a clear
message earlier; ``departure_capacity_violated`` recognises the constraint when it fires, so the
caller (which owns the transaction) can turn it into ``SeatsUnavailable``.

Callers must hold the departure's row lock (``availability.queries.departure_lock``)
so that the in-memory ``seats_reserved`` they pass in is current.
"""

from __future__ import annotations

from django.db import IntegrityError
from django.utils import timezone

from availability.models import Departure
from availability.queries import departure_add_seats, departure_lock
from tourapp.exceptions import Conflict, DomainError, integrity_constraint_name

CAPACITY_CONSTRAINT = "departure_seats_within_capacity"


class SeatsUnavailable(Conflict):
    code = "seats_unavailable"


class CapacityBelowReserved(DomainError):
    """Staff asked for fewer seats than are already reserved on the departure."""

    code = "capacity_below_reserved"


class DepartureNotBookable(DomainError):
    """Unknown or past departure: the request is wrong, not in conflict with someone else."""

    code = "departure_not_bookable"


def departure_capacity_violated(exc: IntegrityError) -> bool:
    """True when ``exc`` is the departure capacity ``CheckConstraint`` firing."""
    return integrity_constraint_name(exc) == CAPACITY_CONSTRAINT


def departure_ensure_bookable(*, departure: Departure | None, departure_id: int) -> Departure:
    """The departure, if it exists and has not started yet; ``DepartureNotBookable`` otherwise."""
    if departure is None:
        raise DepartureNotBookable(
            f"Departure {departure_id} does not exist.", fields={"departure_id": ["Unknown departure."]}
        )
    if departure.starts_at <= timezone.now():
        raise DepartureNotBookable(
            f"Departure {departure_id} has already started; it can no longer be booked.",
            fields={"departure_id": ["This departure is in the past."]},
        )
    return departure


def departure_capacity_check(*, departure_id: int, capacity: int) -> None:
    """``CapacityBelowReserved`` unless ``capacity`` covers the seats reserved now.

    Locks the departure (inside the caller's transaction, which must be the one that saves the
    new capacity): no booking can reserve seats between this check and that save.
    """
    departure = departure_lock(departure_id=departure_id).departure
    if departure is not None and capacity < departure.seats_reserved:
        raise CapacityBelowReserved(
            f"{departure.seats_reserved} seat(s) are already reserved on this departure.",
            fields={"capacity": [f"At least {departure.seats_reserved}: seats already reserved."]},
        )


def departure_reserve_seats(*, departure: Departure, seats: int) -> None:
    """Reserve ``seats`` on a locked departure; ``SeatsUnavailable`` when fewer are left."""
    if seats > departure.seats_left:
        raise SeatsUnavailable(
            f"Only {departure.seats_left} seat(s) left on this departure; {seats} requested.",
            fields={"seats": [f"Only {departure.seats_left} seat(s) left."]},
        )
    departure_add_seats(departure_id=departure.pk, seats=seats)
    departure.seats_reserved += seats


def departure_release_seats(*, departure: Departure, seats: int) -> None:
    """Give ``seats`` back to a locked departure (a cancellation)."""
    departure_add_seats(departure_id=departure.pk, seats=-seats)
    departure.seats_reserved -= seats
