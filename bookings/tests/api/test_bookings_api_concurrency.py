"""Over HTTP, against a live server, real requests racing: capacity, the per-user seat cap and
idempotency hold whatever the interleaving."""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db.models import Sum
from rest_framework.authtoken.models import Token

from availability.tests.factories import DepartureFactory
from bookings.models import Booking
from bookings.tests.factories import UserFactory
from messaging.models import OutboxEvent

pytestmark = pytest.mark.django_db(transaction=True)


def _post(url: str, token: str, body: dict, barrier: threading.Barrier, key: str | None = None) -> tuple[int, dict]:
    """POST like a well-behaved client: an Idempotency-Key, and retries when the connection drops.

    25 simultaneous connects can overflow the test server's small listen backlog (reset by peer);
    retrying with the same key is safe, which is what the key is for.
    """
    request = urllib.request.Request(  # noqa: S310 - the test's own live server over http://
        url,
        data=json.dumps(body).encode(),
        headers={
            "Authorization": f"Token {token}",
            "Content-Type": "application/json",
            "Idempotency-Key": key or f"race-{token[:8]}",
        },
        method="POST",
    )
    barrier.wait(timeout=30)
    for attempt in range(20):
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - same
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())
        except (ConnectionError, http.client.RemoteDisconnected, urllib.error.URLError):
            time.sleep(0.01 * (attempt + 1))  # connection-level retry back-off, not a wait for state
    raise AssertionError("the live server never accepted the request")


def test_25_concurrent_http_clients_for_20_seats_sell_exactly_20_and_get_409_otherwise(live_server) -> None:
    # given: a departure with 20 seats and 25 customers who each want one
    departure = DepartureFactory(capacity=20)
    tokens = [Token.objects.create(user=UserFactory()).key for _ in range(25)]
    barrier = threading.Barrier(len(tokens))
    url = f"{live_server.url}/api/bookings/"
    body = {"departure_id": departure.pk, "seats": 1, "tier": "standard"}

    # when
    with ThreadPoolExecutor(max_workers=len(tokens)) as pool:
        results = list(pool.map(lambda token: _post(url, token, body, barrier), tokens))

    # then
    statuses = [status for status, _ in results]
    # 200 is a retried request whose first attempt had booked (an idempotent replay).
    assert sum(status in (200, 201) for status in statuses) == 20, statuses
    assert statuses.count(409) == 5, statuses
    for status, payload in results:
        if status == 409:
            assert payload["error"]["code"] == "seats_unavailable"
            assert payload["error"]["message"] == "Only 0 seat(s) left on this departure; 1 requested."
    departure.refresh_from_db()
    confirmed = Booking.objects.filter(departure=departure, status=Booking.Status.CONFIRMED)
    assert departure.seats_reserved == departure.capacity == confirmed.aggregate(total=Sum("seats"))["total"]
    assert OutboxEvent.objects.count() == confirmed.count() == 20


def _race(url: str, token: str, bodies_and_keys: list[tuple[dict, str]]) -> list[tuple[int, dict]]:
    """POST every (body, key) at once, one thread each, all as the user of ``token``."""
    barrier = threading.Barrier(len(bodies_and_keys))
    with ThreadPoolExecutor(max_workers=len(bodies_and_keys)) as pool:
        return list(pool.map(lambda body_key: _post(url, token, body_key[0], barrier, body_key[1]), bodies_and_keys))


def _seats_held(user, departure) -> int:
    confirmed = Booking.objects.filter(user=user, departure=departure, status=Booking.Status.CONFIRMED)
    return confirmed.aggregate(total=Sum("seats"))["total"] or 0


@pytest.mark.parametrize(
    ("requests", "seats_each"),
    [(24, 1), (6, 10)],
    ids=["24 parallel 1-seat requests", "6 parallel 10-seat requests"],
)
def test_one_user_racing_parallel_http_bookings_never_holds_more_than_the_per_user_cap(
    live_server, settings, requests, seats_each
) -> None:
    # given: a departure with room for everyone, and one user firing many bookings at once
    cap = settings.BOOKING_MAX_SEATS_PER_USER_PER_DEPARTURE
    departure = DepartureFactory(capacity=requests * seats_each * 2)
    user = UserFactory()
    token = Token.objects.create(user=user).key
    body = {"departure_id": departure.pk, "seats": seats_each, "tier": "standard"}

    # when: each request carries its own key (so a connection-level retry is a replay, not a new booking)
    results = _race(f"{live_server.url}/api/bookings/", token, [(body, f"cap-{i}") for i in range(requests)])

    # then: exactly the cap is sold to this user, the rest are per-user-limit conflicts
    statuses = [status for status, _ in results]
    assert sum(status in (200, 201) for status in statuses) == cap // seats_each, statuses
    refused = [payload["error"]["code"] for status, payload in results if status == 409]
    assert refused == ["seat_limit_per_user"] * (requests - cap // seats_each), refused
    assert _seats_held(user, departure) == cap
    departure.refresh_from_db()
    assert departure.seats_reserved == cap
    assert OutboxEvent.objects.count() == Booking.objects.count() == cap // seats_each


def test_one_user_racing_the_same_idempotency_key_books_once_and_every_request_gets_that_booking(
    live_server,
) -> None:
    # given
    departure = DepartureFactory(capacity=50)
    user = UserFactory()
    token = Token.objects.create(user=user).key
    body = {"departure_id": departure.pk, "seats": 2, "tier": "standard"}

    # when: 12 identical requests with one key race each other
    results = _race(f"{live_server.url}/api/bookings/", token, [(body, "same-key")] * 12)

    # then: one booking, one event; one 201 and the others replay it (200) with the same id
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * 11 + [201], statuses
    assert {payload["id"] for _, payload in results} == {Booking.objects.get().pk}
    assert _seats_held(user, departure) == 2
    assert OutboxEvent.objects.count() == 1


def test_one_user_racing_one_idempotency_key_with_different_bodies_gets_one_booking_and_409s(live_server) -> None:
    # given: the same key sent with different contact emails at once
    departure = DepartureFactory(capacity=50)
    user = UserFactory()
    token = Token.objects.create(user=user).key
    bodies = [
        {"departure_id": departure.pk, "seats": 1, "tier": "standard", "contact_email": user.email},
        {"departure_id": departure.pk, "seats": 1, "tier": "standard", "contact_email": "someone.else@example.com"},
    ] * 4

    # when
    results = _race(f"{live_server.url}/api/bookings/", token, [(body, "one-key") for body in bodies])

    # then: one booking; the requests that differ from it are 409 idempotency_key_reused, never a replay
    booking = Booking.objects.get()
    for status, payload in results:
        if status == 409:
            assert payload["error"]["code"] == "idempotency_key_reused"
        else:
            assert status in (200, 201)
            assert payload["id"] == booking.pk
    winners = sum(status in (200, 201) for status, _ in results)
    assert winners == 4, [status for status, _ in results]
    assert OutboxEvent.objects.count() == 1
