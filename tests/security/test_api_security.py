"""Hostile use of the API, in process: ownership, authentication, server-owned fields, throttling,
the per-user seat cap and the admin. Each test states the attack and what must not happen."""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from availability.models import Departure
from availability.tests.factories import DepartureFactory
from bookings.models import Booking
from bookings.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _own_cache_prefix(settings):  # type: ignore[no-untyped-def]
    """Throttle counters live in Redis: a fresh prefix per test keeps them ours."""
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": f"security-test.{uuid.uuid4().hex[:8]}"}}


def _client_for(user) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.force_authenticate(user)
    return client


def _book(client: APIClient, departure: Departure, seats: int = 1, **extra):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/bookings/", {"departure_id": departure.id, "seats": seats, "tier": "standard", **extra}, format="json"
    )


def test_another_users_booking_is_a_404_for_read_and_for_cancel_and_stays_confirmed():
    # given Alice's booking
    alice, mallory = UserFactory(), UserFactory()
    created = _book(_client_for(alice), DepartureFactory())
    assert created.status_code == 201
    booking_id = created.json()["id"]

    # when Mallory reads and cancels it
    read = _client_for(mallory).get(f"/api/bookings/{booking_id}/")
    cancel = _client_for(mallory).post(f"/api/bookings/{booking_id}/cancel/")

    # then both are 404 (no hint the booking exists) and nothing changed
    assert (read.status_code, cancel.status_code) == (404, 404)
    assert Booking.objects.get(id=booking_id).status == Booking.Status.CONFIRMED
    assert _client_for(mallory).get("/api/bookings/").json()["count"] == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/bookings/"),
        ("post", "/api/bookings/"),
        ("get", "/api/bookings/1/"),
        ("post", "/api/bookings/1/cancel/"),
    ],
)
def test_unauthenticated_requests_to_bookings_are_refused(method, path):
    response = getattr(APIClient(), method)(path, {}, format="json")
    assert response.status_code in (401, 403)
    assert Booking.objects.count() == 0


@pytest.mark.parametrize(
    "field_value",
    [
        {"total_price": "0.01"},
        {"price": "0.01"},
        {"status": "cancelled"},
        {"user": 999},
        {"user_id": 999},
        {"owner": 999},
        {"currency": "XXX"},
    ],
)
def test_price_status_owner_or_currency_sent_by_a_client_never_take_effect(field_value):
    # given a user and a departure of a 199.99 USD tour
    user, departure = UserFactory(), DepartureFactory()

    # when the booking request carries a server-owned field
    response = _book(_client_for(user), departure, **field_value)

    # then it is refused (never applied) and nothing is booked
    assert response.status_code == 400
    assert Booking.objects.count() == 0
    assert Departure.objects.get(id=departure.id).seats_reserved == 0


def test_a_normal_booking_gets_its_price_currency_status_and_owner_from_the_server():
    user, departure = UserFactory(), DepartureFactory()
    body = _book(_client_for(user), departure, seats=2).json()
    booking = Booking.objects.get(id=body["id"])
    assert (booking.user_id, booking.status, booking.currency) == (user.id, "confirmed", departure.tour.currency)
    assert booking.total_price == departure.tour.base_price * 2


def test_a_burst_of_booking_requests_from_one_user_is_throttled_with_429():
    # given the configured booking rate, e.g. "120/min"
    allowed = int(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["bookings"].split("/")[0])
    client = _client_for(UserFactory())

    # when the user posts more booking requests than that within the period (invalid ones: no writes needed)
    statuses = [client.post("/api/bookings/", {"seats": 0}, format="json").status_code for _ in range(allowed + 3)]

    # then the first ones are answered and the rest are throttled
    assert 429 not in statuses[:allowed]
    assert statuses[allowed:] == [429, 429, 429]


def test_one_user_cannot_hold_more_than_the_per_departure_seat_cap():
    # given a big departure and a user who already holds the cap in several bookings
    cap = settings.BOOKING_MAX_SEATS_PER_USER_PER_DEPARTURE
    departure = DepartureFactory(capacity=cap * 5)
    client = _client_for(UserFactory())
    held = 0
    while held < cap:
        seats = min(settings.BOOKING_MAX_SEATS, cap - held)
        assert _book(client, departure, seats=seats).status_code == 201
        held += seats

    # when they ask for one more seat
    response = _book(client, departure, seats=1)

    # then it is refused with a conflict and the seats held stay at the cap
    assert response.status_code == 409
    assert Departure.objects.get(id=departure.id).seats_reserved == cap


@pytest.mark.parametrize("who", ["anonymous", "non-staff"])
def test_the_admin_redirects_anyone_but_staff_to_the_login_page(client, who):
    if who == "non-staff":
        client.force_login(UserFactory(is_staff=False))
    response = client.get("/admin/bookings/booking/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_admin_opens_for_staff(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert client.get("/admin/bookings/booking/").status_code == 200


def test_a_token_works_only_while_its_user_is_active():
    # given: a user with a token, who can see their bookings
    from rest_framework.authtoken.models import Token

    user = UserFactory()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert client.get("/api/bookings/").status_code == 200
    # when: the account is deactivated
    user.is_active = False
    user.save(update_fields=["is_active"])
    # then: the same token is refused
    response = client.get("/api/bookings/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
