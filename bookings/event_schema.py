"""The booking events' wire contract (ARCHITECTURE.md): event types, tiers, and the schema that
reads their body into a typed :class:`BookingEventPayload`.

Registered from ``BookingsConfig.ready`` (:func:`register`) for ``tour.*`` and for the ``payment.*``
events, whose body is a booking body plus the payment fields (``bookings.events``). Routing keys
are ``<event type>.<tier>`` (``messaging.events.routing_key_for``).

Guarantees: a body without a usable ``bookingId`` or with a mistyped field raises
``InvalidMessage`` (the message is dead-lettered with the reason); a foreign producer's message
(no ``eventId``, ``totalPrice`` a JSON number) gets the dedup key ``<event type>:<booking id>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from messaging import schemas
from messaging.envelope import InvalidMessage, body_int, body_str

TOUR_BOOKED: Final = "tour.booked"
TOUR_CANCELLED: Final = "tour.cancelled"
# Payment outcomes of a booking, recorded by the payments app, routed as ``payment.<outcome>.<tier>``
# on the same exchange and topic (consumers bound to ``tour.booked.*`` never see them). Named here,
# not in payments, because notifications (a sibling of payments) reads them too.
PAYMENT_CAPTURED: Final = "payment.captured"
PAYMENT_FAILED: Final = "payment.failed"
PAYMENT_REFUNDED: Final = "payment.refunded"
PAYMENT_EVENT_TYPES: Final = (PAYMENT_CAPTURED, PAYMENT_FAILED, PAYMENT_REFUNDED)
BOOKING_EVENT_TYPES: Final = (TOUR_BOOKED, TOUR_CANCELLED, *PAYMENT_EVENT_TYPES)

TIER_PREMIUM: Final = "premium"
TIER_STANDARD: Final = "standard"
TIERS: Final = (TIER_PREMIUM, TIER_STANDARD)


@dataclass(frozen=True)
class BookingEventPayload:
    """What a handler reads from a booking event; absent fields are ``None`` / ``""``."""

    booking_id: str
    tour_id: int | None = None
    departure_id: int | None = None
    user_id: int | None = None
    seats: int | None = None
    tier: str = ""
    status: str = ""
    total_price: Decimal | None = None
    currency: str = ""
    user_email: str = ""
    phone: str = ""
    tour_name: str = ""
    # Only on cancellations (customer, staff, payment_declined); never a reason to reject a message.
    cancellation_reason: str = ""


def _money(body: Mapping[str, Any], key: str) -> Decimal | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidMessage(f"field {key} must be a decimal string or a number, got {type(value).__name__}")
    try:
        # str() first: a float goes through its shortest repr (199.99, not 199.989999...).
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise InvalidMessage(f"field {key} is not a decimal: {value!r}") from exc
    if not amount.is_finite() or amount < 0:
        raise InvalidMessage(f"field {key} must be a non-negative finite amount, got {value!r}")
    return amount.quantize(Decimal("0.01"))


class BookingEventSchema:
    """``messaging.schemas.EventSchema`` of the booking and payment events."""

    def parse(self, body: Mapping[str, Any]) -> BookingEventPayload:
        booking_id = body.get("bookingId")
        if isinstance(booking_id, bool) or not isinstance(booking_id, int | str) or str(booking_id).strip() == "":
            raise InvalidMessage("missing or mistyped field bookingId")
        reason = body.get("cancellationReason")
        return BookingEventPayload(
            booking_id=str(booking_id).strip()[:64],
            tour_id=body_int(body, "tourId"),
            departure_id=body_int(body, "departureId"),
            user_id=body_int(body, "userId"),
            seats=body_int(body, "seats", minimum=1),
            tier=body_str(body, "tier"),
            status=body_str(body, "status"),
            total_price=_money(body, "totalPrice"),
            currency=body_str(body, "currency"),
            user_email=body_str(body, "userEmail"),
            phone=body_str(body, "phone"),
            tour_name=body_str(body, "tourName"),
            cancellation_reason=reason if isinstance(reason, str) else "",
        )

    def aggregate_key(self, payload: BookingEventPayload) -> str:
        return payload.booking_id

    def dedup_key(self, *, event_type: str, payload: BookingEventPayload) -> str:
        return f"{event_type}:{payload.booking_id}"

    def __repr__(self) -> str:
        return "BookingEventSchema()"


BOOKING_EVENT_SCHEMA: Final = BookingEventSchema()


def register() -> None:
    schemas.register(event_types=BOOKING_EVENT_TYPES, schema=BOOKING_EVENT_SCHEMA)
