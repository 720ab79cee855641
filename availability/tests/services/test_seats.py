"""Seat reservation: the code checks first, the CheckConstraint decides if the code is ever wrong."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from availability.models import Departure
from availability.queries import departure_lock
from availability.services import (
    SeatsUnavailable,
    departure_capacity_violated,
    departure_release_seats,
    departure_reserve_seats,
)
from availability.tests.factories import DepartureFactory
from bookings.models import Booking
from bookings.tests.factories import UserFactory, booking_create
from messaging.models import OutboxEvent

pytestmark = pytest.mark.django_db


def test_departure_reserve_then_release_seats_updates_the_row() -> None:
    # given
    departure = DepartureFactory(capacity=10, seats_reserved=4)

    # when
    with transaction.atomic():
        locked = departure_lock(departure_id=departure.pk).departure
        assert locked is not None
        departure_reserve_seats(departure=locked, seats=6)
        departure_release_seats(departure=locked, seats=2)

    # then
    departure.refresh_from_db()
    assert departure.seats_reserved == locked.seats_reserved == 8


def test_departure_reserve_seats_refuses_more_than_left_with_a_clear_message() -> None:
    departure = DepartureFactory(capacity=10, seats_reserved=9)
    with pytest.raises(SeatsUnavailable) as exc_info, transaction.atomic():
        departure_reserve_seats(departure=departure, seats=2)
    assert exc_info.value.http_status == 409
    assert exc_info.value.message == "Only 1 seat(s) left on this departure; 2 requested."


def test_the_capacity_check_constraint_rejects_overbooking_from_a_stale_instance() -> None:
    # given: an unlocked, stale copy that believes the departure is empty
    departure = DepartureFactory(capacity=5)
    stale = Departure.objects.get(pk=departure.pk)
    Departure.objects.filter(pk=departure.pk).update(seats_reserved=5)

    # when / then
    with pytest.raises(IntegrityError) as exc_info, transaction.atomic():
        departure_reserve_seats(departure=stale, seats=1)
    assert departure_capacity_violated(exc_info.value)


def test_booking_create_turns_the_constraint_violation_into_seats_unavailable(monkeypatch) -> None:
    # given: the code's own check is broken (it believes seats are unlimited)
    departure = DepartureFactory(capacity=1, seats_reserved=1)
    monkeypatch.setattr(Departure, "seats_left", property(lambda self: 10**6))

    # when / then: the database still says no, as a 409, and nothing is written
    with pytest.raises(SeatsUnavailable):
        booking_create(user=UserFactory(), departure_id=departure.pk, seats=1, tier="standard")
    assert not Booking.objects.exists()
    assert not OutboxEvent.objects.exists()
