"""Booking writes. Each one is a single ``transaction.atomic()`` that also records its event.

Guarantees:

- **No overbooking.** The departure row is locked (``availability.queries.departure_lock``)
  before seats are counted, and the database ``CheckConstraint`` rejects any overbooking the code
  might still let through; it surfaces as ``SeatsUnavailable`` (409).
- **The event is part of the write.** A created booking records exactly one ``tour.booked``
  outbox event, a (first) cancellation one ``tour.cancelled``, in the same transaction; a
  rejected or rolled-back booking records none. The relay is woken at commit (the outbox
  statement's ``NOTIFY``).
- **Idempotent retries.** With an ``Idempotency-Key`` (scoped to the user, enforced by a unique
  constraint) a replayed request returns the booking it created the first time and records no
  new event, even when the replays race each other. The whole request is its fingerprint: the
  same key with any other departure, seats, tier, contact email or phone is a 409, never a replay.
- **Per-user seat cap under concurrency.** The seats a user holds are counted after the
  departure lock is granted (``bookings.queries.booking_seats_held``).
- **No spam relay.** A booking that sends its confirmation to someone other than the account's
  own email (any other address, or a phone) counts against per-user and per-recipient daily
  caps (``BOOKING_THIRD_PARTY_CONTACTS_PER_*``), counted in Redis with ``INCR`` (race-safe).
- **Harmless double cancel.** Cancelling a cancelled booking returns it unchanged, no event.

Lock order: departure row first, then the booking row (see ``availability.queries``).
"""

from __future__ import annotations

import hashlib
import logging
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

import phonenumbers
from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from availability.models import Departure
from availability.queries import departure_lock
from availability.services import (
    SeatsUnavailable,
    departure_capacity_violated,
    departure_ensure_bookable,
    departure_release_seats,
    departure_reserve_seats,
)
from bookings.event_schema import TIER_PREMIUM, TIERS, TOUR_BOOKED, TOUR_CANCELLED
from bookings.events import booking_event_payload
from bookings.models import Booking
from bookings.queries import (
    booking_insert_bind,
    booking_insert_with_event,
    booking_payment_status_set,
    booking_seats_held,
)
from bookings.selectors import booking_get_by_idempotency_key, booking_lock_for_update
from messaging.events import routing_key_for
from messaging.models import OutboxEvent
from messaging.services import outbox_event_build, outbox_event_record
from tourapp.exceptions import Conflict, DomainError, NotFound, integrity_constraint_name
from tourapp.throttling import window_counts

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


class ThirdPartyContactLimitExceeded(DomainError):
    code = "third_party_contact_limit"
    http_status = 429


class BookingCreateResult(NamedTuple):
    booking: Booking
    created: bool  # False: an Idempotency-Key replay returned the booking made the first time


def booking_price(*, base_price: Decimal, seats: int, tier: str) -> Decimal:
    """``base_price * seats``, times ``BOOKING_PREMIUM_MULTIPLIER`` for premium, rounded to cents."""
    total = base_price * seats
    if tier == TIER_PREMIUM:
        total *= settings.BOOKING_PREMIUM_MULTIPLIER
    return total.quantize(CENT, rounding=ROUND_HALF_UP)


def booking_create_or_replay(
    *,
    user: User,
    departure_id: int,
    seats: int,
    tier: str,
    contact_email: str | None = None,
    contact_phone: str = "",
    payment_token: str = "",
    idempotency_key: str | None = None,
) -> BookingCreateResult:
    """Book seats and record ``tour.booked``; or return the booking an earlier request with the same key made.

    Raises ``InvalidBooking`` / ``DepartureNotBookable`` (400), ``SeatsUnavailable``,
    ``SeatLimitPerUserExceeded``, ``IdempotencyKeyReused`` (409), ``ThirdPartyContactLimitExceeded``
    (429). Nothing is written when it raises. ``contact_phone`` is stored in E.164.
    """
    email = contact_email or user.email
    phone = _validate_request(seats=seats, tier=tier, email=email, phone=contact_phone)
    request: dict[str, Any] = {
        "departure_id": departure_id,
        "seats": seats,
        "tier": tier,
        "contact_email": email,
        "contact_phone": phone,
        "payment_token": payment_token,
    }
    if idempotency_key:
        earlier = booking_get_by_idempotency_key(user=user, idempotency_key=idempotency_key)
        if earlier is not None:
            return BookingCreateResult(_replayed(earlier, **request), created=False)
    _count_third_party_contacts(user=user, email=email, phone=phone)
    try:
        with transaction.atomic():
            # The booking's id is reserved with the lock, so its row and its event go in one statement.
            locked, booking_id = departure_lock(departure_id=departure_id, reserve_pk_of=Booking)
            departure = departure_ensure_bookable(departure=locked, departure_id=departure_id)
            if idempotency_key:
                # A concurrent replay may have committed while we waited for the departure lock.
                earlier = booking_get_by_idempotency_key(user=user, idempotency_key=idempotency_key)
                if earlier is not None:
                    return BookingCreateResult(_replayed(earlier, **request), created=False)
            held = booking_seats_held(user_id=user.pk, departure_id=departure_id)
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
                contact_phone=phone,
                status=Booking.Status.CONFIRMED,
                payment_token=payment_token,
                idempotency_key=idempotency_key or None,
            )
            values = booking_insert_bind(booking=booking)  # sets booking.created_at, as save() would
            event = _booking_event(booking=booking, event_type=TOUR_BOOKED, occurred_at=booking.created_at)
            booking_insert_with_event(booking=booking, values=values, event=event)
            _log_event(booking=booking, event=event)
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
    return _booking_cancel(booking_id=booking_id, owner=user, reason=Booking.CancellationReason.CUSTOMER)


def booking_cancel_by_staff(*, booking_id: int) -> Booking:
    """Staff cancel any booking, even after departure (admin action); same code path and event."""
    return _booking_cancel(booking_id=booking_id, owner=None, reason=Booking.CancellationReason.STAFF)


def _booking_cancel(*, booking_id: int, owner: User | None, reason: str, payment_status: str | None = None) -> Booking:
    """Cancel, release the seats and record ``tour.cancelled`` (with ``reason``); a second cancel
    changes nothing. ``payment_status``, when given, is written under the same lock, even then."""
    bookings = Booking.objects.filter(pk=booking_id)
    if owner is not None:
        bookings = bookings.filter(user=owner)
    departure_id = bookings.values_list("departure_id", flat=True).first()
    if departure_id is None:
        raise NotFound(f"No booking {booking_id}" + (" for this user." if owner is not None else "."))
    with transaction.atomic():
        departure = departure_lock(departure_id=departure_id).departure
        if departure is None:  # cannot happen: a booking's departure is protected from deletion
            raise Departure.DoesNotExist(f"No departure {departure_id}.")
        booking = booking_lock_for_update(booking_id=booking_id).get()
        if booking.status == Booking.Status.CANCELLED:
            booking.departure = departure
            if payment_status is not None and booking.payment_status != payment_status:
                booking.payment_status = payment_status
                booking.save(update_fields=["payment_status", "updated_at"])
            return booking
        now = timezone.now()
        if owner is not None and departure.starts_at <= now:
            raise BookingNotCancellable("This departure has already started; the booking can no longer be cancelled.")
        booking.status = Booking.Status.CANCELLED
        booking.cancelled_at = now
        booking.cancellation_reason = reason
        booking.payment_status = payment_status or booking.payment_status
        booking.save(update_fields=["status", "cancelled_at", "cancellation_reason", "payment_status", "updated_at"])
        departure_release_seats(departure=departure, seats=booking.seats)
        booking.departure = departure
        _record_event(booking=booking, event_type=TOUR_CANCELLED, occurred_at=now)
    return booking


def _booking_event(*, booking: Booking, event_type: str, occurred_at) -> OutboxEvent:
    """The outbox event about ``booking``, built for ``bookings.queries.booking_insert_with_event``."""
    return outbox_event_build(**_booking_event_fields(booking=booking, event_type=event_type, occurred_at=occurred_at))


def _record_event(*, booking: Booking, event_type: str, occurred_at) -> None:
    event = outbox_event_record(
        **_booking_event_fields(booking=booking, event_type=event_type, occurred_at=occurred_at)
    )
    _log_event(booking=booking, event=event)


def _booking_event_fields(*, booking: Booking, event_type: str, occurred_at) -> dict[str, Any]:
    return {
        "aggregate_type": "booking",
        "aggregate_id": str(booking.pk),
        "event_type": event_type,
        "routing_key": routing_key_for(event_type, booking.tier),
        "payload": booking_event_payload(booking=booking, occurred_at=occurred_at),
    }


def _log_event(*, booking: Booking, event: OutboxEvent) -> None:
    # No PII here: ids only (email and phone travel in the event, never in logs).
    logger.info(
        "booking %s: %s recorded (%s seat(s), %s)",
        booking.pk,
        event.event_type,
        booking.seats,
        booking.tier,
        extra={"booking_id": booking.pk, "event_id": str(event.event_id)},
    )


def _validate_request(*, seats: int, tier: str, email: str, phone: str) -> str:
    """Raise ``InvalidBooking`` listing every bad field; return the phone in E.164 (or "")."""
    fields: dict[str, list[str]] = {}
    if not isinstance(seats, int) or isinstance(seats, bool) or not 1 <= seats <= settings.BOOKING_MAX_SEATS:
        fields["seats"] = [f"Must be a whole number from 1 to {settings.BOOKING_MAX_SEATS}."]
    if tier not in TIERS:
        fields["tier"] = [f"Must be one of: {', '.join(TIERS)}."]
    if not email:
        fields["contact_email"] = ["Required: this account has no email address."]
    e164 = _phone_e164(phone)
    if e164 is None:
        fields["contact_phone"] = ["Not a valid phone number: use the international format, e.g. +33612345678."]
    if fields:
        raise InvalidBooking("The booking request is invalid.", fields=fields)
    return e164 or ""


def _phone_e164(phone: str) -> str | None:
    """``phone`` in E.164 ("" stays ""), or None if it is not a valid number (``phonenumbers``)."""
    if not phone:
        return ""
    try:
        number = phonenumbers.parse(phone, None)  # no default region: the number must say its country (+...)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _count_third_party_contacts(*, user: User, email: str, phone: str) -> None:
    """Count a booking that messages someone else than the account's own email, per user and per
    recipient per UTC day; refuse it past ``BOOKING_THIRD_PARTY_CONTACTS_PER_USER_PER_DAY`` or
    ``..._PER_RECIPIENT_PER_DAY``. An account has no phone of its own, so a phone always counts.
    Attempts count, refused ones too: the caps bound what one account can make us send."""
    recipients: dict[str, str] = {}  # field -> recipient
    if email.casefold() != (user.email or "").casefold():
        recipients["contact_email"] = email.casefold()
    if phone:
        recipients["contact_phone"] = phone
    if not recipients:
        return
    day = timezone.now().date().isoformat()
    # Recipients are hashed: no email address or phone number in cache keys.
    keys = [f"contacts:user:{user.pk}:{day}"] + [
        f"contacts:to:{hashlib.sha256(recipient.encode()).hexdigest()[:32]}:{day}" for recipient in recipients.values()
    ]
    counts = window_counts(keys=keys, seconds=2 * 24 * 3600)
    if counts is None:  # cache unavailable: allowed, as the request throttles do
        return
    per_user = settings.BOOKING_THIRD_PARTY_CONTACTS_PER_USER_PER_DAY
    if counts[0] > per_user:
        raise ThirdPartyContactLimitExceeded(
            f"At most {per_user} booking(s) a day may send their confirmation to someone else than "
            "your account's email; try again tomorrow.",
            fields={field: ["Daily limit of confirmations sent to other people reached."] for field in recipients},
        )
    per_recipient = settings.BOOKING_THIRD_PARTY_CONTACTS_PER_RECIPIENT_PER_DAY
    over = [field for field, count in zip(recipients, counts[1:], strict=True) if count > per_recipient]
    if over:
        raise ThirdPartyContactLimitExceeded(
            f"At most {per_recipient} confirmation(s) a day go to one recipient; try again tomorrow.",
            fields={field: ["Daily limit for this recipient reached."] for field in over},
        )


def _check_seat_limit_per_user(*, held: int, seats: int) -> None:
    limit = settings.BOOKING_MAX_SEATS_PER_USER_PER_DEPARTURE
    if held + seats > limit:
        raise SeatLimitPerUserExceeded(
            f"At most {limit} seat(s) per person on one departure; you already hold {held}.",
            fields={"seats": [f"You can book at most {max(limit - held, 0)} more seat(s) on this departure."]},
        )


def _replayed(
    booking: Booking,
    *,
    departure_id: int,
    seats: int,
    tier: str,
    contact_email: str,
    contact_phone: str,
    payment_token: str,
) -> Booking:
    """The earlier booking, if this request is the same as the one that made it (every field)."""
    earlier = (
        booking.departure_id,
        booking.seats,
        booking.tier,
        booking.contact_email,
        booking.contact_phone,
        booking.payment_token,
    )
    if earlier != (departure_id, seats, tier, contact_email, contact_phone, payment_token):
        raise IdempotencyKeyReused(
            "This Idempotency-Key was already used for a different booking request; use a new key."
        )
    return booking


# ------------------------------------------------------------------ payments
# Called by ``payments.services`` inside ITS transaction: the booking change, the payment record
# and their events commit together.


def booking_cancel_for_payment_failure(*, booking_id: int, reason: str) -> Booking:
    """Compensation for a declined payment: cancel with ``reason``, release the seats, record
    ``tour.cancelled`` carrying the reason, and mark the booking's payment ``failed``.

    Idempotent: a booking already cancelled (say by its owner meanwhile) only gets its payment
    status set; no second event. Runs inside the caller's transaction when there is one.
    """
    return _booking_cancel(
        booking_id=booking_id, owner=None, reason=reason, payment_status=Booking.PaymentStatus.FAILED
    )


def booking_payment_status_record(*, booking_id: int, payment_status: str) -> Booking:
    """Lock the booking (departure and tour joined, for the event payload) and set its payment status
    (one statement: ``bookings.queries.booking_payment_status_set``).

    Must run inside the caller's transaction: the lock is held until it commits, so the payment
    record and its event are written under it.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("booking_payment_status_record() must run inside the payment's transaction")
    return booking_payment_status_set(booking_id=booking_id, payment_status=payment_status, now=timezone.now())
