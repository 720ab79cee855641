"""Tours, their departures and seat capacity (the source of truth), plus the availability read model."""

from __future__ import annotations

from django.db import models


class Tour(models.Model):
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=200, unique=True)
    description = models.TextField(blank=True)
    base_price = models.DecimalField(max_digits=10, decimal_places=2)
    currency = models.CharField(max_length=3, default="USD")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.CheckConstraint(condition=models.Q(base_price__gte=0), name="tour_price_non_negative")]

    def __str__(self) -> str:
        return self.name


class Departure(models.Model):
    tour = models.ForeignKey(Tour, on_delete=models.PROTECT, related_name="departures")
    starts_at = models.DateTimeField(db_index=True)
    capacity = models.PositiveIntegerField()
    seats_reserved = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["starts_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(seats_reserved__gte=0) & models.Q(seats_reserved__lte=models.F("capacity")),
                name="departure_seats_within_capacity",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.tour} @ {self.starts_at:%Y-%m-%d %H:%M}"

    @property
    def seats_left(self) -> int:
        return self.capacity - self.seats_reserved


class DepartureAvailability(models.Model):
    """Read model: seats left per departure, built only from events (tour.booked / tour.cancelled).

    Rebuilt from scratch by replaying the Kafka topic (``manage.py availability_rebuild``).
    """

    departure_id = models.BigIntegerField(primary_key=True)
    tour_id = models.BigIntegerField(db_index=True)
    capacity = models.PositiveIntegerField()
    seats_booked = models.IntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "departure availability"

    def __str__(self) -> str:
        return f"departure {self.departure_id}: {self.seats_left} left"

    @property
    def seats_left(self) -> int:
        return self.capacity - self.seats_booked
