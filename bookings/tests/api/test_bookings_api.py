"""The bookings API: create, list, read and cancel, own bookings only; idempotent retries."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from availability.tests.factories import DepartureFactory
from bookings.event_schema import TOUR_BOOKED, TOUR_CANCELLED
from bookings.models import Booking
from bookings.tests.factories import UserFactory, booking_create
from messaging.models import OutboxEvent

pytestmark = pytest.mark.django_db

BOOKINGS = "/api/bookings/"


def test_post_booking_creates_it_and_records_one_tour_booked_event(api, customer, departure) -> None:
    # when
    response = api.post(
        BOOKINGS,
        {"departure_id": departure.pk, "seats": 2, "tier": "standard", "contact_phone": "+33600000001"},
        format="json",
    )

    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "confirmed"
    assert body["total_price"] == "399.98"
    assert body["currency"] == "USD"
    assert body["contact_email"] == customer.email
    assert body["departure_id"] == departure.pk
    event = OutboxEvent.objects.get()
    assert event.event_type == TOUR_BOOKED
    assert event.aggregate_id == str(body["id"])


def test_post_booking_needs_authentication(departure) -> None:
    response = APIClient().post(BOOKINGS, {"departure_id": departure.pk, "seats": 1, "tier": "standard"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert not Booking.objects.exists()


def test_post_booking_on_a_full_departure_is_a_409_with_a_clear_message(api, customer) -> None:
    departure = DepartureFactory(capacity=2, seats_reserved=2)
    response = api.post(BOOKINGS, {"departure_id": departure.pk, "seats": 1, "tier": "standard"}, format="json")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "seats_unavailable"
    assert error["message"] == "Only 0 seat(s) left on this departure; 1 requested."
    assert not OutboxEvent.objects.exists()


def test_post_booking_with_a_replayed_idempotency_key_returns_the_same_booking(api, departure) -> None:
    # given
    payload = {"departure_id": departure.pk, "seats": 1, "tier": "premium"}
    first = api.post(BOOKINGS, payload, format="json", HTTP_IDEMPOTENCY_KEY="3f1c-retry")

    # when
    second = api.post(BOOKINGS, payload, format="json", HTTP_IDEMPOTENCY_KEY="3f1c-retry")

    # then
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json() == second.json()
    assert Booking.objects.count() == 1
    assert OutboxEvent.objects.count() == 1


def test_post_booking_reusing_an_idempotency_key_for_another_request_is_a_409(api, departure) -> None:
    api.post(BOOKINGS, {"departure_id": departure.pk, "seats": 1, "tier": "premium"}, HTTP_IDEMPOTENCY_KEY="k1")
    response = api.post(
        BOOKINGS, {"departure_id": departure.pk, "seats": 2, "tier": "premium"}, HTTP_IDEMPOTENCY_KEY="k1"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"


def test_get_bookings_lists_only_my_bookings_paginated(api, customer, departure) -> None:
    # given
    mine = [booking_create(user=customer, departure_id=departure.pk, seats=1, tier="standard") for _ in range(3)]
    booking_create(user=UserFactory(), departure_id=departure.pk, seats=1, tier="standard")

    # when
    response = api.get(BOOKINGS)

    # then
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert [item["id"] for item in body["results"]] == [b.pk for b in reversed(mine)]
    assert "next" in body


def test_get_and_cancel_someone_elses_booking_are_404_and_change_nothing(api, departure) -> None:
    # given
    theirs = booking_create(user=UserFactory(), departure_id=departure.pk, seats=1, tier="standard")

    # when
    read = api.get(reverse("bookings:booking-detail", args=[theirs.pk]))
    cancel = api.post(reverse("bookings:booking-cancel", args=[theirs.pk]))

    # then
    assert read.status_code == cancel.status_code == 404
    assert read.json()["error"]["code"] == "not_found"
    theirs.refresh_from_db()
    assert theirs.status == Booking.Status.CONFIRMED
    assert not OutboxEvent.objects.filter(event_type=TOUR_CANCELLED).exists()


def test_cancel_my_booking_twice_returns_200_both_times_with_one_event(api, customer, departure) -> None:
    # given
    booking = booking_create(user=customer, departure_id=departure.pk, seats=2, tier="standard")
    url = reverse("bookings:booking-cancel", args=[booking.pk])

    # when
    first, second = api.post(url), api.post(url)

    # then
    assert (first.status_code, second.status_code) == (200, 200)
    assert first.json()["status"] == second.json()["status"] == "cancelled"
    assert OutboxEvent.objects.filter(event_type=TOUR_CANCELLED).count() == 1
    detail = api.get(reverse("bookings:booking-detail", args=[booking.pk]))
    assert detail.json()["status"] == "cancelled"


def test_post_bookings_is_throttled_with_the_bookings_scope(api, departure, monkeypatch) -> None:
    # given: a rate of 2 per minute (DRF copies its rates onto the class at import time)
    monkeypatch.setattr(
        ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES, "bookings": "2/min"}
    )
    payload = {"departure_id": departure.pk, "seats": 1, "tier": "standard"}

    # when
    responses = [api.post(BOOKINGS, payload, format="json") for _ in range(3)]
    listing = api.get(BOOKINGS)

    # then
    assert [r.status_code for r in responses] == [201, 201, 429]
    assert responses[2].json()["error"]["code"] == "throttled"
    assert "Retry-After" in responses[2].headers
    assert listing.status_code == 200  # reads are not throttled
    assert Booking.objects.count() == 2


def test_browsable_api_renders_the_bookings_page_with_a_booking_form_for_a_logged_in_user(
    client, customer, departure
) -> None:
    # given
    client.force_login(customer)

    # when
    response = client.get(BOOKINGS, HTTP_ACCEPT="text/html")

    # then
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="departure_id"' in html and 'name="tier"' in html
    assert 'name="total_price"' not in html


@pytest.mark.parametrize(
    "change",
    [
        {"contact_email": "someone.else@example.com"},
        {"contact_phone": "+33612345678"},
        {"seats": 2},
        {"tier": "standard"},
        {"departure_id": "other"},
        {"payment_token": "tok_decline"},
    ],
    ids=["contact_email", "contact_phone", "seats", "tier", "departure", "payment_token"],
)
def test_post_booking_reusing_an_idempotency_key_with_any_field_changed_is_a_409(api, departure, change) -> None:
    # given: a booking made with a key
    payload = {"departure_id": departure.pk, "seats": 1, "tier": "premium"}
    assert api.post(BOOKINGS, payload, format="json", HTTP_IDEMPOTENCY_KEY="k-fp").status_code == 201
    if change.get("departure_id") == "other":
        change = {"departure_id": DepartureFactory(capacity=5).pk}

    # when: the same key with one field different
    response = api.post(BOOKINGS, {**payload, **change}, format="json", HTTP_IDEMPOTENCY_KEY="k-fp")

    # then: a conflict, not a silent replay of the first booking
    assert response.status_code == 409, response.content
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert Booking.objects.count() == OutboxEvent.objects.count() == 1


def test_post_booking_replay_with_the_phone_written_differently_is_the_same_request(api, departure) -> None:
    # given: the phone is stored in E.164
    payload = {"departure_id": departure.pk, "seats": 1, "tier": "standard", "contact_phone": "+33 6 12 34 56 78"}
    first = api.post(BOOKINGS, payload, format="json", HTTP_IDEMPOTENCY_KEY="k-phone")

    # when
    again = api.post(
        BOOKINGS, {**payload, "contact_phone": "+33612345678"}, format="json", HTTP_IDEMPOTENCY_KEY="k-phone"
    )

    # then
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["contact_phone"] == "+33612345678"
    assert again.json()["id"] == first.json()["id"]


@pytest.mark.parametrize("phone", ["not-a-phone", "0612345678", "+1 555", "+999123456789"])
def test_post_booking_with_an_invalid_phone_is_a_400_naming_contact_phone(api, departure, phone) -> None:
    response = api.post(
        BOOKINGS, {"departure_id": departure.pk, "seats": 1, "tier": "standard", "contact_phone": phone}, format="json"
    )
    assert response.status_code == 400, response.content
    assert "contact_phone" in response.json()["error"]["fields"]
    assert not Booking.objects.exists()


@pytest.mark.parametrize(
    "field",
    [{"contact_email": "a" * 250 + "@example.com"}, {"contact_phone": "+" + "1" * 40}, {"payment_token": "t" * 65}],
    ids=["262-char contact_email", "41-char contact_phone", "65-char payment_token"],
)
def test_post_booking_with_a_string_longer_than_its_column_is_a_400_not_a_500(api, departure, field) -> None:
    response = api.post(
        BOOKINGS, {"departure_id": departure.pk, "seats": 1, "tier": "standard", **field}, format="json"
    )
    assert response.status_code == 400, response.content
    assert set(response.json()["error"]["fields"]) == set(field)
    assert not Booking.objects.exists()


def test_post_booking_with_a_flood_of_unknown_fields_gets_a_small_400_naming_a_few(api, departure) -> None:
    # given: 5,000 unknown fields, one of them with a very long name
    body = {"departure_id": departure.pk, "seats": 1, "tier": "standard", "x" * 10_000: 1}
    body.update({f"unknown_{i}": i for i in range(5_000)})

    # when
    response = api.post(BOOKINGS, body, format="json")

    # then
    assert response.status_code == 400
    assert len(response.content) < 4_000
    fields = response.json()["error"]["fields"]
    assert len(fields) == 21  # 20 names, and how many more
    assert fields["non_field_errors"] == ["4981 more unknown field(s) not listed."]
    assert "x" * 64 + "…" in fields
    assert not Booking.objects.exists()


def test_post_booking_with_a_payment_token_keeps_it_and_shows_the_payment_pending(api, departure) -> None:
    # when: a booking names the payment method to charge
    response = api.post(
        BOOKINGS,
        {"departure_id": departure.pk, "seats": 1, "tier": "standard", "payment_token": "tok_decline"},
        format="json",
    )

    # then: the seats are held, the payment is pending, and the token is kept for the charge (never shown)
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["status"], body["payment_status"], body["cancellation_reason"]) == ("confirmed", "pending", "")
    assert "payment_token" not in body
    assert Booking.objects.get().payment_token == "tok_decline"


@pytest.mark.parametrize("token", ["tok decline", "tok_decline;DROP", "jeton-é"])
def test_post_booking_with_a_malformed_payment_token_is_a_400_naming_it(api, departure, token) -> None:
    response = api.post(
        BOOKINGS, {"departure_id": departure.pk, "seats": 1, "tier": "standard", "payment_token": token}, format="json"
    )
    assert response.status_code == 400, response.content
    assert set(response.json()["error"]["fields"]) == {"payment_token"}
    assert not Booking.objects.exists()
