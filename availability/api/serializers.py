"""Output shapes for tours and their departures (public, read-only)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers


class DepartureOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    starts_at = serializers.DateTimeField()
    capacity = serializers.IntegerField()
    # From the Departure row itself (the source of truth), not from the read model.
    seats_left = serializers.IntegerField()
    # From the availability read model (built from events, eventually consistent); null until its
    # first event was applied. One query per response (see get_seats_left_projected).
    seats_left_projected = serializers.SerializerMethodField()

    def get_seats_left_projected(self, departure: Any) -> int | None:
        from availability.read_model import seats_left_by_tours

        root = self.root
        cache = getattr(root, "_seats_left_projected", None)
        if cache is None:
            instance = root.instance
            tours = instance if isinstance(instance, list | tuple) or hasattr(instance, "model") else [instance]
            assert tours is not None
            tour_ids = [getattr(t, "tour_id", None) or t.pk for t in tours if t is not None]
            cache = seats_left_by_tours(tour_ids=tour_ids or [departure.tour_id])
            root._seats_left_projected = cache  # type: ignore[attr-defined]  # per-response cache on the root serializer
        return cache.get(departure.pk)


class TourOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    slug = serializers.SlugField()
    description = serializers.CharField()
    base_price = serializers.DecimalField(max_digits=10, decimal_places=2)
    currency = serializers.CharField()
    departures = DepartureOutputSerializer(many=True, help_text="Upcoming departures only.")
