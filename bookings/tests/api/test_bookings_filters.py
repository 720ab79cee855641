"""The bookings list's filters and page size: each filter narrows the user's own bookings (newest
first), filters combine, someone else's bookings never appear, and a bad value is a 400 naming the
parameter in the API's error shape."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from availability.tests.factories import DepartureFactory, TourFactory
from bookings.models import Booking
from bookings.tests.factories import BookingFactory, UserFactory

pytestmark = pytest.mark.django_db

BOOKINGS = "/api/bookings/"
CONFIRMED, CANCELLED = Booking.Status.CONFIRMED, Booking.Status.CANCELLED
P = Booking.PaymentStatus


@dataclass
class World:
    tour_a: int
    tour_b: int
    early_a: int  # departure of tour A, 2030-01-10
    late_a: int  # departure of tour A, 2030-02-10
    late_b: int  # departure of tour B, 2030-03-10
    mine: dict[str, int]  # name -> booking id of the customer


@pytest.fixture
def world(customer) -> World:
    tour_a, tour_b = TourFactory(), TourFactory()
    early_a = DepartureFactory(tour=tour_a, starts_at=datetime(2030, 1, 10, 8, tzinfo=UTC))
    late_a = DepartureFactory(tour=tour_a, starts_at=datetime(2030, 2, 10, 8, tzinfo=UTC))
    late_b = DepartureFactory(tour=tour_b, starts_at=datetime(2030, 3, 10, 8, tzinfo=UTC))
    shapes = {
        "early_a_paid": (early_a, CONFIRMED, P.PAID),
        "late_a_refunded": (late_a, CANCELLED, P.REFUNDED),
        "late_b_pending": (late_b, CONFIRMED, P.PENDING),
        "early_a_failed": (early_a, CANCELLED, P.FAILED),
    }
    mine = {}
    someone_else = UserFactory()
    for name, (departure, status, payment_status) in shapes.items():
        mine[name] = BookingFactory(user=customer, departure=departure, status=status, payment_status=payment_status).pk
        # The same booking by someone else: it matches every filter the customer's does.
        BookingFactory(user=someone_else, departure=departure, status=status, payment_status=payment_status)
    return World(tour_a.pk, tour_b.pk, early_a.pk, late_a.pk, late_b.pk, mine)


def _ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [booking["id"] for booking in response.json()["results"]]


def _newest_first(world: World, *names: str) -> list[int]:
    # Created one after the other: the newest is the one with the highest id.
    return sorted((world.mine[name] for name in names), reverse=True)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({}, ["early_a_paid", "late_a_refunded", "late_b_pending", "early_a_failed"]),
        ({"status": "confirmed"}, ["early_a_paid", "late_b_pending"]),
        ({"status": "cancelled"}, ["late_a_refunded", "early_a_failed"]),
        ({"payment_status": "paid"}, ["early_a_paid"]),
        ({"payment_status": "pending"}, ["late_b_pending"]),
        ({"departure": "early_a"}, ["early_a_paid", "early_a_failed"]),
        ({"tour": "tour_a"}, ["early_a_paid", "late_a_refunded", "early_a_failed"]),
        ({"tour": "tour_b"}, ["late_b_pending"]),
        ({"starts_after": "2030-02-01"}, ["late_a_refunded", "late_b_pending"]),
        ({"starts_before": "2030-02-01T00:00:00Z"}, ["early_a_paid", "early_a_failed"]),
        # an offset is honoured: 09:00+01:00 is the departure's own 08:00 UTC, and after is inclusive
        ({"starts_after": "2030-02-10T09:00:00+01:00"}, ["late_a_refunded", "late_b_pending"]),
        # before is exclusive
        ({"starts_before": "2030-02-10T08:00:00Z"}, ["early_a_paid", "early_a_failed"]),
        ({"starts_after": "2030-02-01", "starts_before": "2030-03-01"}, ["late_a_refunded"]),
        ({"tour": "tour_a", "status": "confirmed", "starts_before": "2030-02-01"}, ["early_a_paid"]),
        ({"status": "cancelled", "payment_status": "failed", "departure": "early_a"}, ["early_a_failed"]),
        ({"tour": "tour_b", "status": "cancelled"}, []),
        # an empty value is no filter (what an HTML form sends for a blank field)
        ({"status": "", "tour": ""}, ["early_a_paid", "late_a_refunded", "late_b_pending", "early_a_failed"]),
    ],
)
def test_bookings_list_filters_narrow_the_users_own_bookings_newest_first(api, world, query, expected) -> None:
    # given: ids named in the table stand for the world's objects
    params = {key: str(getattr(world, value, value)) for key, value in query.items()}

    # when
    response = api.get(BOOKINGS, params)

    # then: never a booking of someone else's, though theirs match every filter too
    assert _ids(response) == _newest_first(world, *expected)
    assert response.json()["count"] == len(expected)


def test_bookings_list_filtered_by_someone_elses_departure_shows_none_of_their_bookings(api, world, client_for) -> None:
    # given: a departure only someone else booked
    theirs = BookingFactory(user=UserFactory())

    # when
    response = api.get(BOOKINGS, {"departure": theirs.departure_id})

    # then
    assert _ids(response) == []
    assert _ids(client_for(theirs.user).get(BOOKINGS, {"departure": theirs.departure_id})) == [theirs.pk]


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("status", "booked"),
        ("status", "CONFIRMED"),
        ("payment_status", "free"),
        ("departure", "abc"),
        ("departure", "0"),
        ("departure", "-3"),
        ("departure", "1.5"),
        ("departure", str(2**63)),
        ("departure", "9" * 5000),
        ("tour", "one"),
        ("tour", "1e3"),
        ("starts_after", "tomorrow"),
        ("starts_after", "2030-13-01"),
        ("starts_after", "2030-02-30T00:00:00Z"),
        ("starts_before", "0001-01-01T00:00:00+01:00"),  # before year 1 in UTC
        ("starts_before", "9999-12-31T23:59:59-01:00"),  # after year 9999 in UTC
    ],
)
def test_bookings_list_with_a_bad_filter_value_is_a_400_naming_the_parameter(api, world, param, value) -> None:
    # when
    response = api.get(BOOKINGS, {param: value})

    # then
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert list(error["fields"]) == [param]


def test_bookings_list_with_a_reversed_date_range_is_a_400_naming_starts_before(api, world) -> None:
    response = api.get(BOOKINGS, {"starts_after": "2030-03-01", "starts_before": "2030-02-01"})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"starts_before": ["Must be later than starts_after."]}


def test_bookings_list_filters_need_authentication(world) -> None:
    from rest_framework.test import APIClient

    response = APIClient().get(BOOKINGS, {"status": "confirmed"})
    assert response.status_code == 401


def test_bookings_list_page_size_chooses_the_page_and_links_the_next(api, world) -> None:
    # when
    first = api.get(BOOKINGS, {"page_size": 3, "status": "confirmed"})
    everything = api.get(BOOKINGS, {"page_size": 3})

    # then
    assert len(_ids(first)) == 2 and first.json()["next"] is None
    body = everything.json()
    assert (len(body["results"]), body["count"]) == (3, 4)
    assert "page_size=3" in body["next"] and "page=2" in body["next"]
    assert _ids(api.get(body["next"])) == [_newest_first(world, *world.mine)[-1]]


@pytest.mark.parametrize("asked", ["4", "1000", "9" * 5000])
def test_bookings_list_page_size_above_the_cap_is_served_at_the_cap(api, world, settings, asked) -> None:
    # given
    settings.API_MAX_PAGE_SIZE = 2

    # when
    response = api.get(BOOKINGS, {"page_size": asked})

    # then
    assert len(_ids(response)) == 2
    assert response.json()["count"] == 4


@pytest.mark.parametrize("asked", ["0", "000", "-1", "two", "1.5", " 2", "\uff12"])  # the last: a full-width digit two
def test_bookings_list_page_size_zero_negative_or_not_a_number_is_a_400(api, world, asked) -> None:
    response = api.get(BOOKINGS, {"page_size": asked})
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["fields"]) == ["page_size"]


def test_bookings_list_without_page_size_uses_the_default(api, customer, settings) -> None:
    # given
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "PAGE_SIZE": 2}
    BookingFactory.create_batch(3, user=customer)

    # when
    response = api.get(BOOKINGS, {"page_size": ""})

    # then
    assert len(_ids(response)) == 2


def test_bookings_list_filters_are_offered_in_the_browsable_api(api, world) -> None:
    response = api.get(BOOKINGS, {"status": "confirmed"}, HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"Filters" in response.content and b'name="starts_after"' in response.content
