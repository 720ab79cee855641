"""The tours list pages like every list: ``page_size`` chooses the size, up to API_MAX_PAGE_SIZE;
0, negative or not a number is a 400 naming ``page_size``."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from availability.tests.factories import TourFactory

pytestmark = pytest.mark.django_db

TOURS = "/api/tours/"


def test_tours_list_page_size_chooses_the_page_size() -> None:
    # given
    TourFactory.create_batch(3)

    # when
    response = APIClient().get(TOURS, {"page_size": 2})

    # then
    assert response.status_code == 200
    body = response.json()
    assert (len(body["results"]), body["count"]) == (2, 3)
    assert "page_size=2" in body["next"]


def test_tours_list_page_size_above_the_cap_is_served_at_the_cap(settings) -> None:
    # given
    settings.API_MAX_PAGE_SIZE = 2
    TourFactory.create_batch(3)

    # when
    response = APIClient().get(TOURS, {"page_size": 500})

    # then
    assert response.status_code == 200
    assert len(response.json()["results"]) == 2


@pytest.mark.parametrize("asked", ["0", "-5", "many"])
def test_tours_list_page_size_zero_negative_or_not_a_number_is_a_400(asked) -> None:
    response = APIClient().get(TOURS, {"page_size": asked})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], list(error["fields"])) == ("invalid", ["page_size"])
