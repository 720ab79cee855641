"""``availability.queries``: the departure lock and the seat update agree with the ORM they replace,
and the lock holds the departure row (only it) until the transaction ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from django.db import connection, transaction
from psycopg import errors

from availability.models import Departure, Tour
from availability.queries import departure_add_seats, departure_lock
from availability.tests.factories import DepartureFactory
from bookings.models import Booking
from bookings.tests.factories import BookingFactory


@contextmanager
def _other_connection() -> Iterator[psycopg.Connection]:
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        yield other


def _field_values(departure: Departure) -> dict[str, object]:
    return {field.attname: getattr(departure, field.attname) for field in Departure._meta.concrete_fields}


@pytest.mark.django_db
def test_departure_lock_reads_the_departure_and_its_tour_as_the_orm_does() -> None:
    # given
    departure = DepartureFactory(capacity=12, seats_reserved=5)
    expected = Departure.objects.select_related("tour").get(pk=departure.pk)

    # when
    with transaction.atomic():
        locked, reserved_pk = departure_lock(departure_id=departure.pk)

    # then
    assert locked is not None and reserved_pk is None
    assert _field_values(locked) == _field_values(expected)
    assert locked.tour.name == expected.tour.name and locked.tour.base_price == expected.tour.base_price
    assert not locked._state.adding


@pytest.mark.django_db
def test_departure_lock_of_an_unknown_departure_finds_nothing() -> None:
    with transaction.atomic():
        assert departure_lock(departure_id=2_000_000_000, reserve_pk_of=Booking) == (None, None)


@pytest.mark.django_db
def test_departure_lock_reserves_the_next_primary_key_of_the_model_asked_for() -> None:
    # given
    departure = DepartureFactory()
    earlier = BookingFactory()

    # when
    with transaction.atomic():
        _, reserved_pk = departure_lock(departure_id=departure.pk, reserve_pk_of=Booking)

    # then: an id of that model's sequence, never handed out again
    assert reserved_pk is not None and reserved_pk > earlier.pk
    assert BookingFactory().pk > reserved_pk


@pytest.mark.django_db(transaction=True)
def test_departure_lock_holds_the_departure_row_but_not_its_tour_until_the_transaction_ends() -> None:
    # given
    departure = DepartureFactory()
    lock_departure = f"SELECT 1 FROM {Departure._meta.db_table} WHERE id = %s FOR UPDATE NOWAIT"  # noqa: S608 - test statement
    lock_tour = f"SELECT 1 FROM {Tour._meta.db_table} WHERE id = %s FOR UPDATE NOWAIT"  # noqa: S608 - test statement

    with _other_connection() as other:
        # when
        with transaction.atomic():
            departure_lock(departure_id=departure.pk)

            # then: another transaction cannot lock the departure, but can lock its tour
            with pytest.raises(errors.LockNotAvailable):
                other.execute(lock_departure, [departure.pk])
            other.execute(lock_tour, [departure.tour_id])

        # and the lock ends with the transaction
        assert other.execute(lock_departure, [departure.pk]).fetchone() == (1,)


@pytest.mark.django_db
def test_departure_add_seats_updates_the_row_as_the_orm_update_would() -> None:
    # given
    departure = DepartureFactory(capacity=10, seats_reserved=4)

    # when
    with transaction.atomic():
        departure_add_seats(departure_id=departure.pk, seats=3)
        departure_add_seats(departure_id=departure.pk, seats=-1)

    # then
    departure.refresh_from_db()
    assert departure.seats_reserved == 6
