"""booking_create: price on the server, seats reserved, one tour.booked event in the same transaction."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.utils import timezone

from availability.services import DepartureNotBookable, SeatsUnavailable
from availability.tests.factories import DepartureFactory, TourFactory
from bookings.event_schema import TOUR_BOOKED
from bookings.models import Booking
from bookings.services import (
    IdempotencyKeyReused,
    InvalidBooking,
    SeatLimitPerUserExceeded,
    booking_create_or_replay,
    booking_price,
)
from bookings.tests.factories import UserFactory, booking_create
from messaging.models import OutboxDelivery, OutboxEvent

pytestmark = pytest.mark.django_db


def test_booking_create_reserves_seats_prices_on_server_and_records_one_tour_booked_event(customer) -> None:
    # given
    departure = DepartureFactory(tour=TourFactory(name="Paris City Tour", base_price=Decimal("199.99")), capacity=20)

    # when
    booking = booking_create(
        user=customer, departure_id=departure.pk, seats=2, tier="premium", contact_phone="+33612345678"
    )

    # then
    departure.refresh_from_db()
    assert departure.seats_reserved == 2
    assert booking.status == Booking.Status.CONFIRMED
    assert booking.total_price == Decimal("599.97")  # 199.99 * 2 * 1.5, rounded half up
    assert booking.currency == "USD"
    assert booking.contact_email == customer.email
    event = OutboxEvent.objects.get()
    assert event.event_type == TOUR_BOOKED
    assert event.routing_key == "tour.booked.premium"
    assert (event.aggregate_type, event.aggregate_id, event.message_key) == (
        "booking",
        str(booking.pk),
        str(booking.pk),
    )
    assert event.payload == {
        "eventId": str(event.event_id),
        "eventType": "tour.booked",
        "occurredAt": booking.created_at.isoformat(),
        "bookingId": booking.pk,
        "tourId": departure.tour_id,
        "departureId": departure.pk,
        "userId": customer.pk,
        "bookingDate": booking.created_at.isoformat(),
        "status": "confirmed",
        "seats": 2,
        "tier": "premium",
        "totalPrice": "599.97",
        "currency": "USD",
        "userEmail": customer.email,
        "phone": "+33612345678",
        "tourName": "Paris City Tour",
    }
    assert OutboxDelivery.objects.filter(event=event).count() == 2


@pytest.mark.parametrize(
    ("base", "seats", "tier", "expected"),
    [
        ("199.99", 1, "standard", "199.99"),
        ("199.99", 3, "standard", "599.97"),
        ("199.99", 1, "premium", "299.99"),  # 299.985 rounds half up
        ("0.01", 1, "premium", "0.02"),
        ("0.00", 5, "premium", "0.00"),
    ],
)
def test_booking_price_multiplies_premium_and_rounds_to_cents(base, seats, tier, expected) -> None:
    assert booking_price(base_price=Decimal(base), seats=seats, tier=tier) == Decimal(expected)


def test_booking_create_uses_the_given_contact_email_over_the_account_email(customer, departure) -> None:
    booking = booking_create(
        user=customer, departure_id=departure.pk, seats=1, tier="standard", contact_email="other@example.com"
    )
    assert booking.contact_email == "other@example.com"
    assert OutboxEvent.objects.get().payload["userEmail"] == "other@example.com"


def test_booking_create_rejects_when_departure_is_full_and_writes_nothing(customer) -> None:
    # given
    departure = DepartureFactory(capacity=3, seats_reserved=2)

    # when / then
    with pytest.raises(SeatsUnavailable, match="Only 1 seat"):
        booking_create(user=customer, departure_id=departure.pk, seats=2, tier="standard")
    departure.refresh_from_db()
    assert departure.seats_reserved == 2
    assert not Booking.objects.exists()
    assert not OutboxEvent.objects.exists()


@pytest.mark.parametrize(
    ("departure_kind", "message"),
    [("unknown", "does not exist"), ("past", "already started")],
)
def test_booking_create_rejects_unknown_or_past_departure(customer, departure_kind, message) -> None:
    # given
    if departure_kind == "unknown":
        departure_id = 987654321
    else:
        departure_id = DepartureFactory(starts_at=timezone.now() - timedelta(hours=1)).pk

    # when / then
    with pytest.raises(DepartureNotBookable, match=message) as exc_info:
        booking_create(user=customer, departure_id=departure_id, seats=1, tier="standard")
    assert exc_info.value.http_status == 400
    assert "departure_id" in exc_info.value.fields
    assert not OutboxEvent.objects.exists()


@pytest.mark.parametrize(
    ("seats", "tier", "field"),
    [(0, "standard", "seats"), (-1, "standard", "seats"), (11, "standard", "seats"), (1, "gold", "tier")],
)
def test_booking_create_rejects_bad_seats_or_tier_before_touching_the_database(
    customer, departure, seats, tier, field
) -> None:
    with pytest.raises(InvalidBooking) as exc_info:
        booking_create(user=customer, departure_id=departure.pk, seats=seats, tier=tier)
    assert field in exc_info.value.fields
    assert not Booking.objects.exists()


def test_booking_create_rejects_more_seats_per_user_than_the_limit(customer, departure, settings) -> None:
    # given
    settings.BOOKING_MAX_SEATS_PER_USER_PER_DEPARTURE = 4
    booking_create(user=customer, departure_id=departure.pk, seats=3, tier="standard")

    # when / then
    with pytest.raises(SeatLimitPerUserExceeded, match="you already hold 3"):
        booking_create(user=customer, departure_id=departure.pk, seats=2, tier="standard")
    # another user is not affected
    booking_create(user=UserFactory(), departure_id=departure.pk, seats=4, tier="standard")
    assert OutboxEvent.objects.count() == 2


def test_booking_create_records_no_event_when_the_surrounding_transaction_rolls_back(customer, departure) -> None:
    # given
    class Boom(Exception):
        pass

    # when
    with pytest.raises(Boom), transaction.atomic():
        booking_create(user=customer, departure_id=departure.pk, seats=1, tier="standard")
        raise Boom

    # then
    departure.refresh_from_db()
    assert departure.seats_reserved == 0
    assert not Booking.objects.exists()
    assert not OutboxEvent.objects.exists()
    assert not OutboxDelivery.objects.exists()


def test_booking_create_replayed_with_the_same_idempotency_key_returns_the_first_booking(customer, departure) -> None:
    # given
    first = booking_create_or_replay(
        user=customer, departure_id=departure.pk, seats=2, tier="standard", idempotency_key="key-1"
    )

    # when
    replay = booking_create_or_replay(
        user=customer, departure_id=departure.pk, seats=2, tier="standard", idempotency_key="key-1"
    )

    # then
    assert first.created and not replay.created
    assert replay.booking.pk == first.booking.pk
    assert Booking.objects.count() == 1
    assert OutboxEvent.objects.count() == 1
    departure.refresh_from_db()
    assert departure.seats_reserved == 2


def test_booking_create_scopes_idempotency_keys_per_user(customer, departure) -> None:
    mine = booking_create(user=customer, departure_id=departure.pk, seats=1, tier="standard", idempotency_key="k")
    theirs = booking_create(
        user=UserFactory(), departure_id=departure.pk, seats=1, tier="standard", idempotency_key="k"
    )
    assert mine.pk != theirs.pk


def test_booking_create_rejects_an_idempotency_key_reused_for_a_different_request(customer, departure) -> None:
    booking_create(user=customer, departure_id=departure.pk, seats=1, tier="standard", idempotency_key="k")
    with pytest.raises(IdempotencyKeyReused):
        booking_create(user=customer, departure_id=departure.pk, seats=3, tier="standard", idempotency_key="k")
    assert Booking.objects.count() == 1


def test_booking_create_runs_its_hot_statements_as_prepared_statements(customer, departure) -> None:
    # given a booking made on this connection
    booking_create(user=customer, departure_id=departure.pk, seats=1, tier="standard")

    # then PostgreSQL holds the departure lock, booking insert and outbox write as prepared
    # statements for this connection (parsed and planned once, not per booking)
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = " ".join(row[0] for row in cursor.fetchall())
    assert "FOR UPDATE OF d" in prepared
    assert f'INSERT INTO "{Booking._meta.db_table}"' in prepared
    assert f"INSERT INTO {OutboxEvent._meta.db_table}" in prepared
