"""Over HTTP, against a live server: 25 clients race for the last seats; exactly capacity seats are sold."""

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


def _post(url: str, token: str, body: dict, barrier: threading.Barrier) -> tuple[int, dict]:
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
            "Idempotency-Key": f"race-{token[:8]}",
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
