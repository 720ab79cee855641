"""Output shapes for tours and their departures (public, read-only)."""

from __future__ import annotations

from rest_framework import serializers


class DepartureOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    starts_at = serializers.DateTimeField()
    capacity = serializers.IntegerField()
    # From the Departure row itself (the source of truth), not from the read model.
    seats_left = serializers.IntegerField()


class TourOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    slug = serializers.SlugField()
    description = serializers.CharField()
    base_price = serializers.DecimalField(max_digits=10, decimal_places=2)
    currency = serializers.CharField()
    departures = DepartureOutputSerializer(many=True, help_text="Upcoming departures only.")
