"""booking_cancel: seats released, one tour.cancelled event, a second cancel changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from availability.tests.factories import DepartureFactory
from bookings.event_schema import TOUR_CANCELLED
from bookings.models import Booking
from bookings.services import BookingNotCancellable, booking_cancel, booking_cancel_by_staff
from bookings.tests.factories import BookingFactory, UserFactory, booking_create
from messaging.models import OutboxEvent
from tourapp.exceptions import NotFound

pytestmark = pytest.mark.django_db


def test_booking_cancel_releases_seats_and_records_one_tour_cancelled_event(customer, departure) -> None:
    # given
    booking = booking_create(user=customer, departure_id=departure.pk, seats=3, tier="premium")

    # when
    cancelled = booking_cancel(user=customer, booking_id=booking.pk)

    # then
    assert cancelled.status == Booking.Status.CANCELLED
    assert cancelled.cancelled_at is not None
    departure.refresh_from_db()
    assert departure.seats_reserved == 0
    event = OutboxEvent.objects.get(event_type=TOUR_CANCELLED)
    assert event.routing_key == "tour.cancelled.premium"
    assert event.aggregate_id == str(booking.pk)
    assert event.payload["status"] == "cancelled"
    assert event.payload["bookingId"] == booking.pk
    assert event.payload["totalPrice"] == f"{booking.total_price:.2f}"
    assert event.payload["occurredAt"] == cancelled.cancelled_at.isoformat()


def test_booking_cancel_twice_is_harmless_and_records_no_second_event(customer, departure) -> None:
    # given
    booking = booking_create(user=customer, departure_id=departure.pk, seats=2, tier="standard")
    booking_cancel(user=customer, booking_id=booking.pk)

    # when
    again = booking_cancel(user=customer, booking_id=booking.pk)

    # then
    assert again.status == Booking.Status.CANCELLED
    assert OutboxEvent.objects.filter(event_type=TOUR_CANCELLED).count() == 1
    departure.refresh_from_db()
    assert departure.seats_reserved == 0


def test_booking_cancel_of_someone_elses_booking_is_not_found_and_changes_nothing(customer, departure) -> None:
    # given
    booking = booking_create(user=UserFactory(), departure_id=departure.pk, seats=1, tier="standard")

    # when / then
    with pytest.raises(NotFound):
        booking_cancel(user=customer, booking_id=booking.pk)
    booking.refresh_from_db()
    assert booking.status == Booking.Status.CONFIRMED
    assert not OutboxEvent.objects.filter(event_type=TOUR_CANCELLED).exists()


def test_booking_cancel_is_refused_to_the_owner_after_departure_but_allowed_to_staff(customer) -> None:
    # given: a booking on a departure that has started since
    departure = DepartureFactory(starts_at=timezone.now() - timedelta(hours=1), capacity=5, seats_reserved=1)
    booking = BookingFactory(user=customer, departure=departure, seats=1)

    # when / then
    with pytest.raises(BookingNotCancellable):
        booking_cancel(user=customer, booking_id=booking.pk)
    cancelled = booking_cancel_by_staff(booking_id=booking.pk)
    assert cancelled.status == Booking.Status.CANCELLED
    assert OutboxEvent.objects.filter(event_type=TOUR_CANCELLED).count() == 1
