"""Tour reads the bookings API offers (``availability.selectors``): tours by name, upcoming
departures soonest first, and the seats held on them as the departure rows record."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from availability.selectors import tour_get, tour_list
from bookings.services import booking_create_or_replay
from bookings.tests.factories import DepartureFactory, TourFactory, UserFactory
from tourapp.exceptions import NotFound

pytestmark = pytest.mark.django_db


def test_tour_list_orders_tours_by_name_and_keeps_those_without_upcoming_departures() -> None:
    # given three tours, one with only a past departure
    seine = TourFactory(name="Seine Cruise")
    louvre = TourFactory(name="Louvre Night")
    past_only = TourFactory(name="Montmartre Walk")
    DepartureFactory(tour=past_only, starts_at=timezone.now() - timedelta(days=1))

    # when
    tours = list(tour_list())

    # then
    assert tours == [louvre, past_only, seine]
    assert list(tours[1].departures.all()) == []  # its past departure is not prefetched


def test_tour_list_prefetches_upcoming_departures_soonest_first() -> None:
    # given a tour whose departures were created out of date order, one already gone
    tour = TourFactory()
    late = DepartureFactory(tour=tour, starts_at=timezone.now() + timedelta(days=40))
    soon = DepartureFactory(tour=tour, starts_at=timezone.now() + timedelta(days=2))
    DepartureFactory(tour=tour, starts_at=timezone.now() - timedelta(hours=1))

    # when
    (listed,) = tour_list()

    # then
    assert list(listed.departures.all()) == [soon, late]


def test_tour_list_shows_the_seats_held_by_confirmed_bookings() -> None:
    # given a departure of 10 seats where two customers booked 3 and 2 seats through the service
    departure = DepartureFactory(capacity=10)
    for user, seats in ((UserFactory(), 3), (UserFactory(), 2)):
        booking_create_or_replay(user=user, departure_id=departure.pk, seats=seats, tier="standard")

    # when
    (tour,) = tour_list()

    # then
    (listed,) = tour.departures.all()
    assert (listed.capacity, listed.seats_reserved) == (10, 5)


def test_tour_get_takes_an_all_digit_value_as_an_id_not_a_slug() -> None:
    # given a tour whose slug is all digits (and no tour has that number as its id)
    numbered = TourFactory(slug="999999999")

    # when / then: digits are looked up as an id
    with pytest.raises(NotFound):
        tour_get(id_or_slug="999999999")
    assert tour_get(id_or_slug=str(numbered.pk)) == numbered
