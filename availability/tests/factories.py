"""Typed factory_boy factories for tours and departures (shared by every app's tests).

``DepartureFactory`` starts in the future by default, so a booking against it is accepted.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from availability.models import Departure, Tour


class TourFactory(factory.django.DjangoModelFactory[Tour]):
    class Meta:
        model = Tour
        django_get_or_create = ("slug",)

    name = factory.Sequence(lambda n: f"Test Tour {n}")
    slug = factory.Sequence(lambda n: f"test-tour-{n}")
    description = "A tour created by a test."
    base_price = Decimal("199.99")
    currency = "USD"


class DepartureFactory(factory.django.DjangoModelFactory[Departure]):
    class Meta:
        model = Departure

    tour = factory.SubFactory(TourFactory)
    starts_at = factory.LazyFunction(lambda: timezone.now() + timedelta(days=30))
    capacity = 20
    seats_reserved = 0
