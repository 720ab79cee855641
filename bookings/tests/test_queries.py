"""``bookings.queries``: the booking request's hand-written statements agree with the ORM they
replace, write the booking and its event in one statement, and stay visible to query logging."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext
from django.utils.timezone import now as timezone_now

from availability.queries import departure_lock
from bookings.models import Booking
from bookings.queries import (
    booking_insert_bind,
    booking_insert_with_event,
    booking_payment_status_set,
    booking_seats_held,
)
from bookings.tests.factories import BookingFactory, DepartureFactory, UserFactory, booking_create
from messaging.models import OutboxEvent
from messaging.services import outbox_event_build

pytestmark = pytest.mark.django_db


def _statements(captured: CaptureQueriesContext) -> list[str]:
    """The statements sent, without the savepoints of the test's own transaction."""
    return [query["sql"] for query in captured.captured_queries if "SAVEPOINT" not in query["sql"]]


def test_a_booking_create_shows_its_four_statements_to_query_logging(customer, departure) -> None:
    # when
    with CaptureQueriesContext(connection) as captured:
        booking = booking_create(user=customer, departure_id=departure.pk, seats=2, tier="standard")

    # then: lock (and id), seats held, seats reserved, booking + event: four round trips, each shown
    lock, held, reserve, insert = _statements(captured)
    assert "FOR UPDATE OF d" in lock and "nextval" in lock and f"WHERE d.id = {departure.pk}" in lock
    assert "SUM(seats)" in held and f"user_id = {customer.pk}" in held
    assert reserve.startswith("UPDATE ") and "SET seats_reserved = seats_reserved + 2" in reserve
    assert insert.startswith("WITH booking AS (INSERT INTO ") and Booking._meta.db_table in insert
    assert f"'{booking.pk}'" in insert and "outbox_event AS (" in insert and "pg_notify" in insert


def test_booking_seats_held_counts_confirmed_seats_of_that_user_on_that_departure_as_the_orm_does(
    customer, departure
) -> None:
    # given
    BookingFactory(user=customer, departure=departure, seats=2)
    BookingFactory(user=customer, departure=departure, seats=3)
    BookingFactory(user=customer, departure=departure, seats=4, status=Booking.Status.CANCELLED)
    BookingFactory(user=UserFactory(), departure=departure, seats=5)
    BookingFactory(user=customer, departure=DepartureFactory(), seats=6)
    orm = Booking.objects.filter(user=customer, departure=departure, status=Booking.Status.CONFIRMED).aggregate(
        held=Sum("seats")
    )["held"]

    # when
    held = booking_seats_held(user_id=customer.pk, departure_id=departure.pk)

    # then
    assert held == orm == 5
    assert booking_seats_held(user_id=UserFactory().pk, departure_id=departure.pk) == 0


def _new_booking(*, user: Any, departure_id: int, idempotency_key: str | None = None) -> tuple[Booking, OutboxEvent]:
    """A booking and its event written by ``booking_insert_with_event``, as the service does."""
    locked, booking_id = departure_lock(departure_id=departure_id, reserve_pk_of=Booking)
    assert locked is not None
    booking = Booking(
        id=booking_id,
        user=user,
        departure=locked,
        seats=1,
        tier="standard",
        total_price=locked.tour.base_price,
        currency=locked.tour.currency,
        contact_email=user.email,
        status=Booking.Status.CONFIRMED,
        idempotency_key=idempotency_key,
    )
    values = booking_insert_bind(booking=booking)
    event = outbox_event_build(
        aggregate_type="booking",
        aggregate_id=str(booking.pk),
        event_type="tour.booked",
        routing_key="tour.booked.standard",
        payload={"bookingId": booking.pk},
    )
    booking_insert_with_event(booking=booking, values=values, event=event)
    return booking, event


def test_booking_insert_with_event_writes_the_row_save_would_write_and_its_event(customer, departure) -> None:
    # when
    with transaction.atomic():
        booking, event = _new_booking(user=customer, departure_id=departure.pk)

    # then: the ORM reads back every field of the instance; both instances are left saved
    stored = Booking.objects.get(pk=booking.pk)
    for field in Booking._meta.concrete_fields:
        assert getattr(stored, field.attname) == getattr(booking, field.attname), field.name
    assert booking.created_at is not None and not booking._state.adding
    assert OutboxEvent.objects.get(pk=event.pk).aggregate_id == str(booking.pk) and not event._state.adding
    assert sorted(OutboxEvent.objects.get(pk=event.pk).deliveries.values_list("destination", flat=True)) == sorted(
        settings.OUTBOX_DESTINATIONS
    )


def test_a_booking_row_the_database_refuses_writes_no_event(customer, departure) -> None:
    # given: the user's idempotency key is taken (a unique constraint)
    BookingFactory(user=customer, departure=departure, idempotency_key="key-1")

    # when
    with pytest.raises(IntegrityError), transaction.atomic():
        _new_booking(user=customer, departure_id=departure.pk, idempotency_key="key-1")

    # then
    assert Booking.objects.filter(user=customer).count() == 1
    assert not OutboxEvent.objects.exists()


def _field_values(instance: Any) -> dict[str, Any]:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def test_booking_payment_status_set_returns_what_the_orm_lock_and_save_would_in_one_statement(
    customer, departure
) -> None:
    # given
    booking = BookingFactory(user=customer, departure=departure, seats=1)
    later = timezone_now() + timedelta(seconds=30)

    # when
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        updated = booking_payment_status_set(booking_id=booking.pk, payment_status="paid", now=later)
    # and again with the status it has now
    with transaction.atomic():
        again = booking_payment_status_set(
            booking_id=booking.pk, payment_status="paid", now=later + timedelta(seconds=1)
        )

    # then: one round trip; booking, departure and tour as the ORM reads them back
    assert len(_statements(captured)) == 1
    orm = Booking.objects.select_related("departure__tour").get(pk=booking.pk)
    assert (orm.payment_status, orm.updated_at) == ("paid", later)
    assert _field_values(updated) == _field_values(orm)
    assert _field_values(updated.departure) == _field_values(orm.departure)
    assert _field_values(updated.departure.tour) == _field_values(orm.departure.tour)
    assert again.updated_at == later  # unchanged status: updated_at kept


def test_booking_payment_status_set_of_a_missing_booking_raises_does_not_exist() -> None:
    with pytest.raises(Booking.DoesNotExist), transaction.atomic():
        booking_payment_status_set(booking_id=987654321, payment_status="paid", now=timezone_now())
