"""Public tour catalogue: tours with upcoming departures and seats left from the Departure row."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from availability.tests.factories import DepartureFactory, TourFactory

pytestmark = pytest.mark.django_db


def test_tours_list_is_public_and_shows_seats_left_per_departure() -> None:
    # given
    departure = DepartureFactory(tour=TourFactory(name="Paris City Tour"), capacity=20, seats_reserved=7)

    # when
    response = APIClient().get("/api/tours/")

    # then
    assert response.status_code == 200
    tour = response.json()["results"][0]
    assert tour["name"] == "Paris City Tour"
    assert tour["base_price"] == "199.99"
    assert tour["departures"] == [
        {
            "id": departure.pk,
            "starts_at": departure.starts_at.isoformat().replace("+00:00", "Z"),
            "capacity": 20,
            "seats_left": 13,
            "seats_left_projected": None,  # no event applied to the read model yet
        }
    ]


@pytest.mark.parametrize("by", ["slug", "id"])
def test_tour_detail_by_slug_or_id(by) -> None:
    tour = TourFactory(slug="loire-castles")
    key = tour.slug if by == "slug" else tour.pk
    response = APIClient().get(f"/api/tours/{key}/")
    assert response.status_code == 200
    assert response.json()["id"] == tour.pk


def test_unknown_tour_is_a_404_in_the_error_shape() -> None:
    response = APIClient().get("/api/tours/atlantis/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
