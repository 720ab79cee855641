"""Over HTTP, against a live server: 25 clients race for the last seats; exactly capacity seats are sold."""

from __future__ import annotations

import json
import threading
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
    request = urllib.request.Request(  # noqa: S310 - the test's own live server over http://
        url,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Token {token}", "Content-Type": "application/json"},
        method="POST",
    )
    barrier.wait(timeout=30)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - same
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


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
    statuses = sorted(status for status, _ in results)
    assert statuses == [201] * 20 + [409] * 5
    for status, payload in results:
        if status == 409:
            assert payload["error"]["code"] == "seats_unavailable"
            assert payload["error"]["message"] == "Only 0 seat(s) left on this departure; 1 requested."
    departure.refresh_from_db()
    confirmed = Booking.objects.filter(departure=departure, status=Booking.Status.CONFIRMED)
    assert departure.seats_reserved == departure.capacity == confirmed.aggregate(total=Sum("seats"))["total"]
    assert OutboxEvent.objects.count() == confirmed.count() == 20
