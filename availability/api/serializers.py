"""Output shapes for tours and their departures (public, read-only)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

TOUR_EXAMPLE: dict[str, Any] = {
    "id": 3,
    "name": "Lisbon by tram",
    "slug": "lisbon-by-tram",
    "description": "Alfama, Baixa and Belém aboard the historic line 28, with a local guide.",
    "base_price": "199.99",
    "currency": "USD",
    "departures": [
        {"id": 7, "starts_at": "2027-06-01T08:00:00Z", "capacity": 20, "seats_left": 13, "seats_left_projected": 13},
        {"id": 8, "starts_at": "2027-06-08T08:00:00Z", "capacity": 20, "seats_left": 20, "seats_left_projected": None},
    ],
}


class DepartureOutputSerializer(serializers.Serializer):
    """One upcoming departure of a tour and how many seats it has left."""

    id = serializers.IntegerField(help_text="The departure's id: book it with POST /api/bookings/ (departure_id).")
    starts_at = serializers.DateTimeField(help_text="When it starts (UTC).")
    capacity = serializers.IntegerField(help_text="Seats in total.")
    # From the Departure row itself (the source of truth), not from the read model.
    seats_left = serializers.IntegerField(help_text="Seats still free, exact: counted when each booking is made.")
    # From the availability read model (built from events, eventually consistent); null until its
    # first event was applied. One query per response (see get_seats_left_projected).
    seats_left_projected = serializers.SerializerMethodField(
        help_text="Seats still free as the availability service sees them, from the booking events it has "
        "received: it may lag seats_left by a few seconds. null until that service has received an event "
        "for this departure (e.g. before its first booking)."
    )

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
    """A tour of the catalogue with its upcoming departures."""

    id = serializers.IntegerField(help_text="The tour's id (GET /api/tours/{id}/).")
    name = serializers.CharField(help_text="The tour's name.")
    slug = serializers.SlugField(help_text="The tour's name in its URL (GET /api/tours/{slug}/).")
    description = serializers.CharField(help_text="What the tour is about.")
    base_price = serializers.DecimalField(
        max_digits=10, decimal_places=2, help_text="Price of one standard seat; premium costs more."
    )
    currency = serializers.CharField(help_text="ISO 4217 code of the prices.")
    departures = DepartureOutputSerializer(
        many=True, help_text="Upcoming departures only, soonest first (past ones are not listed)."
    )
