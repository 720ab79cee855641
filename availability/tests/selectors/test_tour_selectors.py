"""Tour reads."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from availability.selectors import tour_get, tour_list
from availability.tests.factories import DepartureFactory, TourFactory
from tourapp.exceptions import NotFound

pytestmark = pytest.mark.django_db


def test_tour_get_finds_by_id_or_slug_and_lists_only_upcoming_departures() -> None:
    # given
    tour = TourFactory(slug="paris-city-tour")
    upcoming = DepartureFactory(tour=tour)
    DepartureFactory(tour=tour, starts_at=timezone.now() - timedelta(days=1))

    # when
    by_slug, by_id = tour_get(id_or_slug="paris-city-tour"), tour_get(id_or_slug=str(tour.pk))

    # then
    assert by_slug == by_id == tour
    assert list(by_slug.departures.all()) == [upcoming]


def test_tour_get_unknown_is_not_found() -> None:
    with pytest.raises(NotFound):
        tour_get(id_or_slug="atlantis")


def test_tour_list_costs_two_queries_whatever_the_number_of_tours(django_assert_num_queries) -> None:
    for _ in range(3):
        DepartureFactory()
    with django_assert_num_queries(2):
        assert all(len(tour.departures.all()) == 1 for tour in tour_list())
