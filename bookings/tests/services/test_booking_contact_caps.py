"""Confirmations to other people than the account (another email, any phone) are capped per user
and per recipient per day, counted in the real Redis, race-safely."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from availability.tests.factories import DepartureFactory
from bookings.models import Booking
from bookings.services import ThirdPartyContactLimitExceeded
from bookings.tests.factories import UserFactory, booking_create


@pytest.fixture(autouse=True)
def _own_counters(settings):
    """Counters under a prefix of this test's own: other tests' bookings never count here."""
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": f"caps.{uuid.uuid4().hex[:8]}"}}


@pytest.mark.django_db
def test_bookings_for_the_accounts_own_email_are_never_capped(settings) -> None:
    # given
    settings.BOOKING_THIRD_PARTY_CONTACTS_PER_USER_PER_DAY = 1
    user, departure = UserFactory(), DepartureFactory(capacity=50)

    # when
    for _ in range(3):
        booking_create(user=user, departure_id=departure.pk, seats=1, tier="standard", contact_email=user.email.upper())
        booking_create(user=user, departure_id=departure.pk, seats=1, tier="standard")

    # then
    assert Booking.objects.count() == 6


@pytest.mark.django_db
def test_one_user_is_capped_per_day_for_confirmations_to_other_people(settings) -> None:
    # given
    settings.BOOKING_THIRD_PARTY_CONTACTS_PER_USER_PER_DAY = 3
    user, departure = UserFactory(), DepartureFactory(capacity=50)
    for i in range(3):
        booking_create(
            user=user, departure_id=departure.pk, seats=1, tier="standard", contact_email=f"friend{i}@example.com"
        )

    # when / then: a fourth other recipient, or a phone, is refused; the own email still books
    with pytest.raises(ThirdPartyContactLimitExceeded) as refused:
        booking_create(user=user, departure_id=departure.pk, seats=1, tier="standard", contact_email="x@example.com")
    assert refused.value.http_status == 429
    assert "contact_email" in refused.value.fields
    with pytest.raises(ThirdPartyContactLimitExceeded):
        booking_create(user=user, departure_id=departure.pk, seats=1, tier="standard", contact_phone="+33612345678")
    booking_create(user=user, departure_id=departure.pk, seats=1, tier="standard")
    assert Booking.objects.count() == 4


@pytest.mark.django_db
def test_one_recipient_is_capped_per_day_whichever_accounts_book_for_it(settings) -> None:
    # given
    settings.BOOKING_THIRD_PARTY_CONTACTS_PER_RECIPIENT_PER_DAY = 2
    departure = DepartureFactory(capacity=50)
    for _ in range(2):
        booking_create(
            user=UserFactory(), departure_id=departure.pk, seats=1, tier="standard", contact_phone="+33612345678"
        )

    # when / then: the same phone, written another way, from yet another account
    with pytest.raises(ThirdPartyContactLimitExceeded) as refused:
        booking_create(
            user=UserFactory(), departure_id=departure.pk, seats=1, tier="standard", contact_phone="+33 6 12 34 56 78"
        )
    assert list(refused.value.fields) == ["contact_phone"]
    assert Booking.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_parallel_bookings_to_one_recipient_never_pass_the_cap(settings) -> None:
    # given: 12 accounts book at once, all sending to one victim address
    settings.BOOKING_THIRD_PARTY_CONTACTS_PER_RECIPIENT_PER_DAY = 5
    departure = DepartureFactory(capacity=50)
    users = [UserFactory() for _ in range(12)]
    barrier = threading.Barrier(len(users))

    def book(user) -> str:
        try:
            barrier.wait(timeout=30)
            booking_create(
                user=user, departure_id=departure.pk, seats=1, tier="standard", contact_email="victim@example.com"
            )
            return "booked"
        except ThirdPartyContactLimitExceeded:
            return "capped"
        finally:
            connection.close()

    # when
    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        outcomes = list(pool.map(book, users))

    # then
    assert sorted(outcomes) == ["booked"] * 5 + ["capped"] * 7
    assert Booking.objects.filter(contact_email="victim@example.com").count() == 5
