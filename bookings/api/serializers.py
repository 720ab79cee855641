"""Explicit input and output shapes for the bookings API. Validation of form only; rules live in services.

Every field carries a ``help_text`` (its description in the schema); the example values below are
the schema's examples (``bookings.api.views``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from bookings.event_schema import TIERS
from bookings.models import Booking
from tourapp.serializers import StrictInputSerializer, model_max_length

BOOKING_EXAMPLE: dict[str, Any] = {
    "id": 42,
    "status": "confirmed",
    "departure_id": 7,
    "starts_at": "2027-06-01T08:00:00Z",
    "tour_id": 3,
    "tour_name": "Lisbon by tram",
    "seats": 2,
    "tier": "standard",
    "total_price": "399.98",
    "currency": "USD",
    "contact_email": "ada@example.com",
    "contact_phone": "+33612345678",
    "created_at": "2026-12-01T09:30:00Z",
    "cancelled_at": None,
    "cancellation_reason": "",
    "payment_status": "paid",
}
BOOKING_CANCELLED_EXAMPLE: dict[str, Any] = {
    **BOOKING_EXAMPLE,
    "status": "cancelled",
    "cancelled_at": "2026-12-02T18:05:00Z",
    "cancellation_reason": "customer",
    "payment_status": "refunded",
}
BOOKING_CREATE_EXAMPLE: dict[str, Any] = {
    "departure_id": 7,
    "seats": 2,
    "tier": "standard",
    "contact_phone": "+33612345678",
}
BOOKING_CREATE_FOR_SOMEONE_ELSE_EXAMPLE: dict[str, Any] = {
    "departure_id": 7,
    "seats": 1,
    "tier": "premium",
    "contact_email": "grace@example.com",
    "payment_token": "tok_success",
}


class BookingCreateInputSerializer(StrictInputSerializer):
    """A booking request: which departure, how many seats, which tier, and whom to confirm it to."""

    departure_id = serializers.IntegerField(
        min_value=1, max_value=2**63 - 1, help_text="The departure to book (an id from GET /api/tours/)."
    )
    seats = serializers.IntegerField(min_value=1, help_text="From 1 to BOOKING_MAX_SEATS (default 10).")
    tier = serializers.ChoiceField(
        choices=TIERS, help_text="premium costs BOOKING_PREMIUM_MULTIPLIER (default 1.5) times standard."
    )
    contact_email = serializers.EmailField(
        required=False,
        max_length=model_max_length(Booking, "contact_email"),
        help_text="Defaults to the account's email. Any other address counts against daily caps.",
    )
    contact_phone = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=model_max_length(Booking, "contact_phone"),
        default="",
        help_text="International (E.164) format, e.g. +33612345678. Counts against daily caps.",
    )
    payment_token = serializers.RegexField(
        r"^[A-Za-z0-9_-]*\Z",
        required=False,
        allow_blank=True,
        max_length=model_max_length(Booking, "payment_token"),
        default="",
        error_messages={"invalid": "Letters, digits, '_' and '-' only."},
        help_text="The payment method to charge, as the payment provider's opaque token (never card data). "
        "Empty: the configured default. With the development gateway: tok_success, tok_decline, "
        "tok_timeout or tok_slow.",
    )

    def validate_seats(self, value: int) -> int:
        if value > settings.BOOKING_MAX_SEATS:
            raise serializers.ValidationError(
                f"Ensure this value is less than or equal to {settings.BOOKING_MAX_SEATS}."
            )
        return value


class BookingOutputSerializer(serializers.Serializer):
    """One of your bookings, with its departure and tour."""

    id = serializers.IntegerField(help_text="The booking's id.")
    status = serializers.CharField(help_text="confirmed, or cancelled (by you, by staff, or a declined payment).")
    departure_id = serializers.IntegerField(help_text="The departure booked.")
    starts_at = serializers.DateTimeField(source="departure.starts_at", help_text="When the departure starts (UTC).")
    tour_id = serializers.IntegerField(source="departure.tour_id", help_text="The tour of that departure.")
    tour_name = serializers.CharField(source="departure.tour.name", help_text="The tour's name.")
    seats = serializers.IntegerField(help_text="Seats held by this booking.")
    tier = serializers.CharField(help_text="standard or premium.")
    total_price = serializers.DecimalField(
        max_digits=12, decimal_places=2, help_text="Price of all the seats, set by the server when booking."
    )
    currency = serializers.CharField(help_text="ISO 4217 code of total_price, the tour's currency.")
    contact_email = serializers.EmailField(help_text="Where the confirmation was sent.")
    contact_phone = serializers.CharField(help_text="Where the SMS confirmation was sent (E.164); empty: none.")
    created_at = serializers.DateTimeField(help_text="When the booking was made (UTC).")
    cancelled_at = serializers.DateTimeField(allow_null=True, help_text="When it was cancelled; null while confirmed.")
    cancellation_reason = serializers.ChoiceField(
        choices=Booking.CancellationReason.choices,
        allow_blank=True,
        help_text="Why it was cancelled (empty while confirmed); payment_declined: the charge was refused.",
    )
    payment_status = serializers.ChoiceField(
        choices=Booking.PaymentStatus.choices,
        help_text="pending until the payment is settled (the seats are held meanwhile), then paid, failed "
        "(the booking is cancelled and its seats released) or refunded (after a cancellation).",
    )
