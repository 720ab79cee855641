"""Typed factory_boy factories for users and bookings (shared by every app's tests).

``BookingFactory`` writes a row directly: it does NOT reserve seats nor record an outbox event.
Tests that need the real write path call ``booking_create`` below (the service, as the API calls it).
"""

from __future__ import annotations

from decimal import Decimal
from functools import cache
from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import AbstractUser

from availability.tests.factories import DepartureFactory, TourFactory
from bookings.models import Booking
from bookings.services import booking_create_or_replay

__all__ = ["BookingFactory", "DepartureFactory", "TourFactory", "UserFactory", "booking_create"]

User = get_user_model()
TEST_PASSWORD = "test-password"


@cache
def _test_password_hash() -> str:
    """Hash once per process: hashing per user (PBKDF2) would cost ~0.3 s per factory call."""
    return make_password(TEST_PASSWORD)


class UserFactory(factory.django.DjangoModelFactory[AbstractUser]):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.LazyFunction(_test_password_hash)


class BookingFactory(factory.django.DjangoModelFactory[Booking]):
    class Meta:
        model = Booking

    user = factory.SubFactory(UserFactory)
    departure = factory.SubFactory(DepartureFactory)
    seats = 1
    tier = Booking.Tier.STANDARD
    total_price = factory.LazyAttribute(lambda b: (b.departure.tour.base_price * b.seats).quantize(Decimal("0.01")))
    currency = factory.LazyAttribute(lambda b: b.departure.tour.currency)
    contact_email = factory.LazyAttribute(lambda b: b.user.email)
    contact_phone = "+33600000000"
    status = Booking.Status.CONFIRMED


def booking_create(**fields: Any) -> Booking:
    """Book through ``bookings.services.booking_create_or_replay`` (seats, price, outbox event) and
    return the booking."""
    return booking_create_or_replay(**fields).booking
