"""The booking event body, per the wire contract in ARCHITECTURE.md (camelCase JSON).

``eventId`` and ``eventType`` are added by ``messaging.services.outbox_event_record``. Money is a
decimal string ("199.99") so no consumer, in any language, rounds it through a float.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bookings.models import Booking


def booking_event_payload(*, booking: Booking, occurred_at: datetime) -> dict[str, Any]:
    """The JSON body of a ``tour.booked`` / ``tour.cancelled`` event for ``booking`` as it is now.

    A cancellation carries ``cancellationReason``.

    ``booking.departure.tour`` should be loaded already (the services pass the locked departure).
    """
    departure = booking.departure
    payload = {
        "occurredAt": occurred_at.isoformat(),
        "bookingId": booking.pk,
        "tourId": departure.tour_id,
        "departureId": departure.pk,
        "userId": booking.user_id,
        "bookingDate": booking.created_at.isoformat(),
        "status": booking.status,
        "seats": booking.seats,
        "tier": booking.tier,
        "totalPrice": f"{booking.total_price:.2f}",
        "currency": booking.currency,
        "userEmail": booking.contact_email,
        "phone": booking.contact_phone,
        "tourName": departure.tour.name,
    }
    if booking.cancellation_reason:
        # Only on cancellations: why (customer, staff, payment_declined). Consumers may ignore it.
        payload["cancellationReason"] = booking.cancellation_reason
    return payload


def booking_payment_event_payload(
    *, booking: Booking, occurred_at: datetime, payment: dict[str, Any]
) -> dict[str, Any]:
    """The body of a ``payment.*`` event: the booking's fields (so a notification can be written from
    it alone) plus ``payment`` (``paymentId``, ``paymentKind``, ``amountMinor``, ``providerReference``,
    ``declineCode``), and the booking's ``paymentStatus``."""
    return {
        **booking_event_payload(booking=booking, occurred_at=occurred_at),
        "paymentStatus": booking.payment_status,
        **payment,
    }
