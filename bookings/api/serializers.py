"""Explicit input and output shapes for the bookings API. Validation of form only; rules live in services."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework import serializers

from messaging.events import TIERS

# Set by the server from the tour, the tier and the authenticated user; a client sending one is told so.
SERVER_OWNED_FIELDS = frozenset({"total_price", "price", "status", "user", "user_id", "owner", "currency"})


class StrictInputSerializer(serializers.Serializer):
    """Rejects any field it does not declare, so a client cannot slip in a price or an owner."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {
                        name: [
                            "This field is set by the server and cannot be sent."
                            if name in SERVER_OWNED_FIELDS
                            else "Unknown field."
                        ]
                        for name in unknown
                    }
                )
        return super().to_internal_value(data)


class BookingCreateInputSerializer(StrictInputSerializer):
    departure_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    seats = serializers.IntegerField(min_value=1, help_text="From 1 to BOOKING_MAX_SEATS (default 10).")
    tier = serializers.ChoiceField(choices=TIERS)
    contact_email = serializers.EmailField(required=False, help_text="Defaults to the account's email.")
    contact_phone = serializers.CharField(required=False, allow_blank=True, max_length=32, default="")

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


class TokenObtainInputSerializer(StrictInputSerializer):
    username = serializers.CharField()
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False)


class TokenOutputSerializer(serializers.Serializer):
    token = serializers.CharField()


class RegisterInputSerializer(StrictInputSerializer):
    username = serializers.RegexField(
        r"^[\w.@+-]+\Z", max_length=150, error_messages={"invalid": "Letters, digits and @/./+/-/_ only."}
    )
    email = serializers.EmailField()
    password = serializers.CharField(style={"input_type": "password"}, trim_whitespace=False, write_only=True)


class RegisterOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField()
    token = serializers.CharField()
