"""Concurrency on real PostgreSQL: no overbooking and no double booking on replay, whatever the interleaving.

Each thread has its own database connection (Django gives one per thread), so these are real
concurrent transactions competing for the departure row lock.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection
from django.db.models import Sum

from availability.services import SeatsUnavailable
from availability.tests.factories import DepartureFactory
from bookings.event_schema import TOUR_BOOKED
from bookings.models import Booking
from bookings.services import booking_create_or_replay
from bookings.tests.factories import UserFactory
from messaging.models import OutboxEvent

pytestmark = pytest.mark.django_db(transaction=True)


def _race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls at once (a barrier releases them together); return results or raised exceptions."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        try:
            barrier.wait(timeout=30)
            return call()
        except Exception as exc:  # the test inspects what each client got
            return exc
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_concurrent_bookings_for_the_last_seats_never_overbook() -> None:
    # given: 30 clients asking for 1 or 2 seats each (45 seats wanted) on a departure of 20
    departure = DepartureFactory(capacity=20)
    users = [UserFactory() for _ in range(30)]
    calls = [
        (
            lambda user=user, seats=1 + i % 2: booking_create_or_replay(
                user=user, departure_id=departure.pk, seats=seats, tier="standard"
            )
        )
        for i, user in enumerate(users)
    ]

    # when
    outcomes = _race(calls)

    # then
    kinds = Counter(type(outcome).__name__ for outcome in outcomes)
    assert set(kinds) <= {"BookingCreateResult", "SeatsUnavailable"}, kinds
    departure.refresh_from_db()
    confirmed = Booking.objects.filter(departure=departure, status=Booking.Status.CONFIRMED)
    sold = confirmed.aggregate(total=Sum("seats"))["total"]
    assert departure.seats_reserved == sold
    assert sold >= 19  # only a 2-seat request can be refused when exactly 1 seat is left
    assert departure.seats_reserved <= departure.capacity
    assert (
        OutboxEvent.objects.filter(event_type=TOUR_BOOKED).count() == confirmed.count() == kinds["BookingCreateResult"]
    )
    assert all(
        "left on this departure" in outcome.message for outcome in outcomes if isinstance(outcome, SeatsUnavailable)
    )


def test_concurrent_replays_of_one_idempotency_key_create_one_booking_and_one_event() -> None:
    # given: a client retrying the same request 12 times at once
    departure = DepartureFactory(capacity=20)
    user = UserFactory()
    calls = [
        lambda: booking_create_or_replay(
            user=user, departure_id=departure.pk, seats=2, tier="premium", idempotency_key="retry-me"
        )
    ] * 12

    # when
    outcomes = _race(calls)

    # then
    assert all(not isinstance(outcome, Exception) for outcome in outcomes), outcomes
    assert len({outcome.booking.pk for outcome in outcomes}) == 1
    assert sum(outcome.created for outcome in outcomes) == 1
    assert Booking.objects.count() == 1
    assert OutboxEvent.objects.count() == 1
    departure.refresh_from_db()
    assert departure.seats_reserved == 2
