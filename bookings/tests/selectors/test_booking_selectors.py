"""Booking reads (``bookings.selectors``): owners see only their own bookings, newest first."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.db import connection, transaction
from django.db.transaction import TransactionManagementError
from django.utils import timezone
from psycopg import sql

from availability.models import Departure
from bookings.models import Booking
from bookings.selectors import (
    booking_get_by_idempotency_key,
    booking_get_for_user,
    booking_list_filter,
    booking_list_for_user,
    booking_lock_for_update,
)
from bookings.tests.factories import BookingFactory, DepartureFactory, TourFactory, UserFactory
from tourapp.exceptions import NotFound

pytestmark = pytest.mark.django_db


def test_booking_list_for_user_returns_only_the_callers_bookings_newest_first() -> None:
    # given two bookings of the caller, made a day apart, and one of someone else
    alice, bob = UserFactory(), UserFactory()
    older, newer = BookingFactory(user=alice), BookingFactory(user=alice)
    Booking.objects.filter(pk=older.pk).update(created_at=timezone.now() - timedelta(days=1))
    BookingFactory(user=bob)

    # when
    listed = list(booking_list_for_user(user=alice))

    # then
    assert listed == [newer, older]


def test_booking_list_for_user_breaks_a_created_at_tie_by_the_newest_id() -> None:
    # given two bookings created at the same instant
    alice = UserFactory()
    first, second = BookingFactory(user=alice), BookingFactory(user=alice)
    Booking.objects.filter(pk__in=[first.pk, second.pk]).update(created_at=timezone.now())

    # when / then
    assert list(booking_list_for_user(user=alice)) == [second, first]


def test_booking_list_for_user_joins_departure_and_tour_in_one_query(django_assert_num_queries) -> None:
    # given three bookings on three departures
    alice = UserFactory()
    for _ in range(3):
        BookingFactory(user=alice)

    # when / then the tour names are read without a query per booking
    with django_assert_num_queries(1):
        assert len({booking.departure.tour.name for booking in booking_list_for_user(user=alice)}) == 3


def test_booking_list_filter_narrows_by_every_given_filter_and_keeps_the_order() -> None:
    # given bookings of the caller on two tours, one cancelled, one paid
    alice = UserFactory()
    louvre, seine = TourFactory(), TourFactory()
    soon = DepartureFactory(tour=louvre, starts_at=timezone.now() + timedelta(days=2))
    later = DepartureFactory(tour=louvre, starts_at=timezone.now() + timedelta(days=20))
    cruise = DepartureFactory(tour=seine, starts_at=timezone.now() + timedelta(days=5))
    paid_soon = BookingFactory(user=alice, departure=soon, payment_status=Booking.PaymentStatus.PAID)
    cancelled_soon = BookingFactory(user=alice, departure=soon, status=Booking.Status.CANCELLED)
    on_later = BookingFactory(user=alice, departure=later)
    on_cruise = BookingFactory(user=alice, departure=cruise)
    mine = booking_list_for_user(user=alice)

    # when / then
    assert list(booking_list_filter(bookings=mine)) == [on_cruise, on_later, cancelled_soon, paid_soon]
    assert list(booking_list_filter(bookings=mine, status=Booking.Status.CONFIRMED)) == [
        on_cruise,
        on_later,
        paid_soon,
    ]
    assert list(booking_list_filter(bookings=mine, payment_status=Booking.PaymentStatus.PAID)) == [paid_soon]
    assert list(booking_list_filter(bookings=mine, departure_id=soon.pk)) == [cancelled_soon, paid_soon]
    assert list(booking_list_filter(bookings=mine, tour_id=seine.pk)) == [on_cruise]
    assert list(booking_list_filter(bookings=mine, tour_id=louvre.pk, status=Booking.Status.CONFIRMED)) == [
        on_later,
        paid_soon,
    ]


def test_booking_list_filter_date_range_is_half_open() -> None:
    # given departures at exactly t0 and t1
    alice = UserFactory()
    t0 = timezone.now() + timedelta(days=3)
    t1 = t0 + timedelta(days=1)
    at_t0 = BookingFactory(user=alice, departure=DepartureFactory(starts_at=t0))
    BookingFactory(user=alice, departure=DepartureFactory(starts_at=t1))

    # when
    in_range = booking_list_filter(bookings=booking_list_for_user(user=alice), starts_after=t0, starts_before=t1)

    # then t0 is in, t1 is out
    assert list(in_range) == [at_t0]


def test_booking_list_filter_cannot_reach_a_booking_outside_the_given_bookings() -> None:
    # given someone else's booking on the departure the caller filters by
    alice, bob = UserFactory(), UserFactory()
    theirs = BookingFactory(user=bob)

    # when
    found = booking_list_filter(bookings=booking_list_for_user(user=alice), departure_id=theirs.departure_id)

    # then
    assert list(found) == []


def test_booking_get_for_user_returns_the_callers_booking() -> None:
    # given
    alice = UserFactory()
    booking = BookingFactory(user=alice, seats=3)

    # when
    got = booking_get_for_user(user=alice, booking_id=booking.pk)

    # then
    assert got == booking and got.seats == 3


def test_booking_get_for_user_hides_someone_elses_booking_as_not_found() -> None:
    # given bob's booking, and an id nobody has
    alice, bob = UserFactory(), UserFactory()
    theirs = BookingFactory(user=bob)

    # when / then both look the same to alice
    with pytest.raises(NotFound):
        booking_get_for_user(user=alice, booking_id=theirs.pk)
    with pytest.raises(NotFound):
        booking_get_for_user(user=alice, booking_id=theirs.pk + 1_000_000)


def test_booking_get_by_idempotency_key_finds_only_the_callers_booking_with_that_key() -> None:
    # given alice and bob each made a booking with the same key
    alice, bob = UserFactory(), UserFactory()
    hers = BookingFactory(user=alice, idempotency_key="key-1")
    BookingFactory(user=bob, idempotency_key="key-1")

    # when / then
    assert booking_get_by_idempotency_key(user=alice, idempotency_key="key-1") == hers
    assert booking_get_by_idempotency_key(user=alice, idempotency_key="key-2") is None


@pytest.mark.django_db(transaction=True)  # outside the test's own transaction
def test_booking_lock_for_update_must_run_in_a_transaction() -> None:
    # given a booking
    booking = BookingFactory()

    # when / then: a lock outside a transaction would end at once, so Django refuses it
    with pytest.raises(TransactionManagementError):
        list(booking_lock_for_update(booking_id=booking.pk))


def _lockable_elsewhere(other: psycopg.Connection, model: type, pk: int) -> bool:
    """Whether a second connection can lock row ``pk`` of ``model`` right now (``NOWAIT``)."""
    statement = sql.SQL("SELECT 1 FROM {} WHERE id = %s FOR UPDATE NOWAIT").format(sql.Identifier(model._meta.db_table))
    try:
        other.execute(statement, [pk])
    except psycopg.errors.LockNotAvailable:
        return False
    return True


@pytest.mark.django_db(transaction=True)  # the second connection must see the committed rows
def test_booking_lock_for_update_locks_the_booking_row_only() -> None:
    # given a committed booking, and a second connection to the same database
    booking = BookingFactory()
    db = connection.settings_dict
    other = psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"],
        password=db["PASSWORD"],
        dbname=db["NAME"],
        autocommit=True,
    )
    try:
        with transaction.atomic():
            # when this transaction takes the lock
            (locked,) = booking_lock_for_update(booking_id=booking.pk)

            # then another transaction cannot lock the booking, but can lock its user and departure
            assert not _lockable_elsewhere(other, Booking, booking.pk)
            assert _lockable_elsewhere(other, type(booking.user), booking.user_id)
            assert _lockable_elsewhere(other, Departure, booking.departure_id)
            assert locked.user == booking.user  # and the user came joined
        # and the lock ends with the transaction
        assert _lockable_elsewhere(other, Booking, booking.pk)
    finally:
        other.close()
