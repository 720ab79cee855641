"""Reads of bookings. Owners see only their own; anyone else's booking is "not found"."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import User
from django.db.models import QuerySet

from bookings.models import Booking
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


def booking_lock_for_update(*, booking_id: int) -> QuerySet[Booking]:
    """The booking row locked ``FOR UPDATE``. Lock order: take its departure's lock FIRST
    (``availability.queries.departure_lock``)."""
    return Booking.objects.select_for_update(of=("self",)).select_related("user").filter(pk=booking_id)
