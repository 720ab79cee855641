"""The shared factories build valid rows (other apps' tests rely on them)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from bookings.tests.factories import BookingFactory


@pytest.mark.django_db
def test_booking_factory_builds_a_confirmed_booking_on_a_future_departure() -> None:
    # given / when
    booking = BookingFactory(seats=2)

    # then
    assert booking.departure.starts_at > timezone.now()
    assert booking.total_price == booking.departure.tour.base_price * 2
    assert booking.contact_email == booking.user.email
    assert booking.user.check_password("test-password")
