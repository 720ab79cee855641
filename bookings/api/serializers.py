"""Explicit input and output shapes for the bookings API. Validation of form only; rules live in services."""

from __future__ import annotations

from django.conf import settings
from rest_framework import serializers

from bookings.models import Booking
from messaging.events import TIERS
from tourapp.serializers import StrictInputSerializer, model_max_length


class BookingCreateInputSerializer(StrictInputSerializer):
    departure_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    seats = serializers.IntegerField(min_value=1, help_text="From 1 to BOOKING_MAX_SEATS (default 10).")
    tier = serializers.ChoiceField(choices=TIERS)
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
    id = serializers.IntegerField()
    status = serializers.CharField()
    departure_id = serializers.IntegerField()
    starts_at = serializers.DateTimeField(source="departure.starts_at")
    tour_id = serializers.IntegerField(source="departure.tour_id")
    tour_name = serializers.CharField(source="departure.tour.name")
    seats = serializers.IntegerField()
    tier = serializers.CharField()
    total_price = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    contact_email = serializers.EmailField()
    contact_phone = serializers.CharField()
    created_at = serializers.DateTimeField()
    cancelled_at = serializers.DateTimeField(allow_null=True)
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
