"""Reads of bookings. Owners see only their own; anyone else's booking is "not found"."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import IntegerField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce

from availability.models import Departure
from availability.selectors import departure_lock_for_update
from bookings.models import Booking
from tourapp.exceptions import NotFound


def booking_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Booking]:
    """The user's bookings, newest first, with departure and tour joined."""
    return Booking.objects.filter(user=user).select_related("departure__tour").order_by("-created_at", "-id")


def booking_get_for_user(*, user: AbstractBaseUser, booking_id: int) -> Booking:
    """The user's booking ``booking_id``; ``NotFound`` if it is missing or belongs to someone else."""
    try:
        return booking_list_for_user(user=user).get(pk=booking_id)
    except Booking.DoesNotExist:
        raise NotFound(f"No booking {booking_id} for this user.") from None


def booking_get_by_idempotency_key(*, user: AbstractBaseUser, idempotency_key: str) -> Booking | None:
    return Booking.objects.select_related("departure__tour").filter(user=user, idempotency_key=idempotency_key).first()


def departure_lock_for_booking(*, departure_id: int, user: AbstractBaseUser) -> Departure | None:
    """The departure locked ``FOR UPDATE`` (tour joined), annotated with ``seats_held_by_user``:
    the seats ``user`` holds in confirmed bookings on it. One round trip instead of two; the sum
    is read under the departure's lock, so concurrent bookings of the same user are serialised."""
    held = (
        Booking.objects.filter(user=user, departure_id=OuterRef("pk"), status=Booking.Status.CONFIRMED)
        .order_by()
        .values("departure_id")
        .annotate(total=Sum("seats"))
        .values("total")
    )
    return (
        departure_lock_for_update(departure_ids=[departure_id])
        .annotate(seats_held_by_user=Coalesce(Subquery(held, output_field=IntegerField()), Value(0)))
        .first()
    )


def booking_lock_for_update(*, booking_id: int) -> QuerySet[Booking]:
    """The booking row locked ``FOR UPDATE``. Lock order: take its departure's lock FIRST."""
    return Booking.objects.select_for_update(of=("self",)).select_related("user").filter(pk=booking_id)
