"""Booking writes. Each one is a single ``transaction.atomic()`` that also records its event.

Guarantees:

- **No overbooking.** The departure row is locked (``availability.selectors.departure_lock_for_update``)
  before seats are counted, and the database ``CheckConstraint`` rejects any overbooking the code
  might still let through; it surfaces as ``SeatsUnavailable`` (409).
- **The event is part of the write.** A created booking records exactly one ``tour.booked``
  outbox event, a (first) cancellation one ``tour.cancelled``, in the same transaction; a
  rejected or rolled-back booking records none. The relay is kicked ``on_commit``.
- **Idempotent retries.** With an ``Idempotency-Key`` (scoped to the user, enforced by a unique
  constraint) a replayed request returns the booking it created the first time and records no
  new event, even when the replays race each other.
- **Harmless double cancel.** Cancelling a cancelled booking returns it unchanged, no event.

Lock order: departure row first, then the booking row (see ``availability.selectors``).
"""

from __future__ import annotations

import logging
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from availability.selectors import departure_lock_for_update
from availability.services import (
    SeatsUnavailable,
    departure_capacity_violated,
    departure_ensure_bookable,
    departure_release_seats,
    departure_reserve_seats,
)
from bookings.events import booking_event_payload
from bookings.models import Booking
from bookings.selectors import (
    booking_get_by_idempotency_key,
    booking_lock_for_update,
    departure_lock_for_booking,
)
from messaging.events import TIER_PREMIUM, TIERS, TOUR_BOOKED, TOUR_CANCELLED, routing_key_for
from messaging.services import outbox_event_record
from tourapp.db import RowInsert, model_insert_statement
from tourapp.exceptions import Conflict, DomainError, NotFound, integrity_constraint_name

IDEMPOTENCY_CONSTRAINT = "booking_unique_idempotency_key_per_user"
CENT = Decimal("0.01")


logger = logging.getLogger(__name__)


class InvalidBooking(DomainError):
    code = "invalid"


class SeatLimitPerUserExceeded(Conflict):
    code = "seat_limit_per_user"


class IdempotencyKeyReused(Conflict):
    code = "idempotency_key_reused"


class BookingNotCancellable(Conflict):
    code = "booking_not_cancellable"


class RegistrationInvalid(DomainError):
    code = "invalid"


class BookingCreateResult(NamedTuple):
    booking: Booking
    created: bool  # False: an Idempotency-Key replay returned the booking made the first time


def booking_price(*, base_price: Decimal, seats: int, tier: str) -> Decimal:
    """``base_price * seats``, times ``BOOKING_PREMIUM_MULTIPLIER`` for premium, rounded to cents."""
    total = base_price * seats
    if tier == TIER_PREMIUM:
        total *= settings.BOOKING_PREMIUM_MULTIPLIER
    return total.quantize(CENT, rounding=ROUND_HALF_UP)


def booking_create(
    *,
    user: User,
    departure_id: int,
    seats: int,
    tier: str,
    contact_email: str | None = None,
    contact_phone: str = "",
    idempotency_key: str | None = None,
) -> Booking:
    """Book ``seats`` on a departure for ``user``; see ``booking_create_or_replay``."""
    return booking_create_or_replay(
        user=user,
        departure_id=departure_id,
        seats=seats,
        tier=tier,
        contact_email=contact_email,
        contact_phone=contact_phone,
        idempotency_key=idempotency_key,
    ).booking


def booking_create_or_replay(
    *,
    user: User,
    departure_id: int,
    seats: int,
    tier: str,
    contact_email: str | None = None,
    contact_phone: str = "",
    idempotency_key: str | None = None,
) -> BookingCreateResult:
    """Book seats and record ``tour.booked``; or return the booking an earlier request with the same key made.

    Raises ``InvalidBooking`` / ``DepartureNotBookable`` (400), ``SeatsUnavailable``,
    ``SeatLimitPerUserExceeded``, ``IdempotencyKeyReused`` (409). Nothing is written when it raises.
    """
    email = contact_email or user.email
    _validate_request(seats=seats, tier=tier, email=email)
    request: dict[str, Any] = {"departure_id": departure_id, "seats": seats, "tier": tier}
    if idempotency_key:
        earlier = booking_get_by_idempotency_key(user=user, idempotency_key=idempotency_key)
        if earlier is not None:
            return BookingCreateResult(_replayed(earlier, **request), created=False)
    try:
        with transaction.atomic():
            locked, held, booking_id = departure_lock_for_booking(departure_id=departure_id, user=user)
            departure = departure_ensure_bookable(departure=locked, departure_id=departure_id)
            if idempotency_key:
                # A concurrent replay may have committed while we waited for the departure lock.
                earlier = booking_get_by_idempotency_key(user=user, idempotency_key=idempotency_key)
                if earlier is not None:
                    return BookingCreateResult(_replayed(earlier, **request), created=False)
            _check_seat_limit_per_user(held=held, seats=seats)
            departure_reserve_seats(departure=departure, seats=seats)
            booking = Booking(
                id=booking_id,
                user=user,
                departure=departure,
                seats=seats,
                tier=tier,
                total_price=booking_price(base_price=departure.tour.base_price, seats=seats, tier=tier),
                currency=departure.tour.currency,
                contact_email=email,
                contact_phone=contact_phone,
                status=Booking.Status.CONFIRMED,
                idempotency_key=idempotency_key or None,
            )
            # The booking row and its event go in one statement: one round trip less per booking.
            row = model_insert_statement(booking)
            _record_event(booking=booking, event_type=TOUR_BOOKED, occurred_at=booking.created_at, along_with=row)
    except IntegrityError as exc:
        if departure_capacity_violated(exc):
            raise SeatsUnavailable("Not enough seats left on this departure.") from exc
        if idempotency_key and integrity_constraint_name(exc) == IDEMPOTENCY_CONSTRAINT:
            earlier = booking_get_by_idempotency_key(user=user, idempotency_key=idempotency_key)
            if earlier is not None:
                return BookingCreateResult(_replayed(earlier, **request), created=False)
        raise
    return BookingCreateResult(booking, created=True)


def booking_cancel(*, user: User, booking_id: int) -> Booking:
    """The owner cancels their booking before departure; ``NotFound`` if it is not theirs."""
    return _booking_cancel(booking_id=booking_id, owner=user)


def booking_cancel_by_staff(*, booking_id: int) -> Booking:
    """Staff cancel any booking, even after departure (admin action); same code path and event."""
    return _booking_cancel(booking_id=booking_id, owner=None)


def _booking_cancel(*, booking_id: int, owner: User | None) -> Booking:
    """Cancel, release the seats and record ``tour.cancelled``; a second cancel changes nothing."""
    bookings = Booking.objects.filter(pk=booking_id)
    if owner is not None:
        bookings = bookings.filter(user=owner)
    departure_id = bookings.values_list("departure_id", flat=True).first()
    if departure_id is None:
        raise NotFound(f"No booking {booking_id}" + (" for this user." if owner is not None else "."))
    with transaction.atomic():
        departure = departure_lock_for_update(departure_ids=[departure_id]).get()
        booking = booking_lock_for_update(booking_id=booking_id).get()
        if booking.status == Booking.Status.CANCELLED:
            booking.departure = departure
            return booking
        now = timezone.now()
        if owner is not None and departure.starts_at <= now:
            raise BookingNotCancellable("This departure has already started; the booking can no longer be cancelled.")
        booking.status = Booking.Status.CANCELLED
        booking.cancelled_at = now
        booking.save(update_fields=["status", "cancelled_at", "updated_at"])
        departure_release_seats(departure=departure, seats=booking.seats)
        booking.departure = departure
        _record_event(booking=booking, event_type=TOUR_CANCELLED, occurred_at=now)
    return booking


def _record_event(*, booking: Booking, event_type: str, occurred_at, along_with: RowInsert | None = None) -> None:
    event = outbox_event_record(
        aggregate_type="booking",
        aggregate_id=str(booking.pk),
        event_type=event_type,
        routing_key=routing_key_for(event_type, booking.tier),
        payload=booking_event_payload(booking=booking, occurred_at=occurred_at),
        along_with=along_with,
    )
    # No PII here: ids only (email and phone travel in the event, never in logs).
    logger.info(
        "booking %s: %s recorded (%s seat(s), %s)",
        booking.pk,
        event_type,
        booking.seats,
        booking.tier,
        extra={"booking_id": booking.pk, "event_id": str(event.event_id)},
    )


def _validate_request(*, seats: int, tier: str, email: str) -> None:
    fields: dict[str, list[str]] = {}
    if not isinstance(seats, int) or isinstance(seats, bool) or not 1 <= seats <= settings.BOOKING_MAX_SEATS:
        fields["seats"] = [f"Must be a whole number from 1 to {settings.BOOKING_MAX_SEATS}."]
    if tier not in TIERS:
        fields["tier"] = [f"Must be one of: {', '.join(TIERS)}."]
    if not email:
        fields["contact_email"] = ["Required: this account has no email address."]
    if fields:
        raise InvalidBooking("The booking request is invalid.", fields=fields)


def _check_seat_limit_per_user(*, held: int, seats: int) -> None:
    limit = settings.BOOKING_MAX_SEATS_PER_USER_PER_DEPARTURE
    if held + seats > limit:
        raise SeatLimitPerUserExceeded(
            f"At most {limit} seat(s) per person on one departure; you already hold {held}.",
            fields={"seats": [f"You can book at most {max(limit - held, 0)} more seat(s) on this departure."]},
        )


def _replayed(booking: Booking, *, departure_id: int, seats: int, tier: str) -> Booking:
    if (booking.departure_id, booking.seats, booking.tier) != (departure_id, seats, tier):
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used for a different booking request; use a new key."
        )
    return booking


def user_register(*, username: str, email: str, password: str) -> tuple[User, Token]:
    """Create a customer account and its API token (the documented way for a new user to get one)."""
    user_model = get_user_model()
    candidate = user_model(username=username, email=email)
    try:
        validate_password(password, user=candidate)
    except ValidationError as exc:
        raise RegistrationInvalid("The password is too weak.", fields={"password": list(exc.messages)}) from None
    try:
        with transaction.atomic():
            user = user_model.objects.create_user(username=username, email=email, password=password)
            token = Token.objects.create(user=user)
    except IntegrityError:
        raise RegistrationInvalid(
            "This username is already taken.", fields={"username": ["This username is already taken."]}
        ) from None
    return user, token


class InvalidCredentials(DomainError):
    code = "invalid_credentials"


def auth_token_obtain(*, username: str, password: str) -> Token:
    """The API token of the user with these credentials (created on first use)."""
    user = authenticate(username=username, password=password)
    if user is None:
        raise InvalidCredentials("Unable to log in with the provided credentials.")
    token, _ = Token.objects.get_or_create(user=user)
    return token
