"""Bad input to POST /api/bookings/ is a 4xx with one error shape, never a 500, and writes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from availability.models import Departure
from availability.tests.factories import DepartureFactory
from bookings.models import Booking
from messaging.models import OutboxEvent

pytestmark = pytest.mark.django_db

BOOKINGS = "/api/bookings/"
VALID = {"departure_id": "<departure>", "seats": 1, "tier": "standard"}


def _with(**changes):
    body = {**VALID, **changes}
    return {key: value for key, value in body.items() if value is not ...}


CASES = [
    # (case id, JSON body or raw bytes, expected status, expected error code, field named in the error)
    ("malformed json", b'{"departure_id": 1, "seats": ', 400, "parse_error", None),
    ("body is a list", [VALID], 400, "invalid", "non_field_errors"),
    ("body is a string", "book me", 400, "invalid", "non_field_errors"),
    ("missing departure", _with(departure_id=...), 400, "invalid", "departure_id"),
    ("unknown departure", _with(departure_id=987654321), 400, "departure_not_bookable", "departure_id"),
    ("past departure", _with(departure_id="<past>"), 400, "departure_not_bookable", "departure_id"),
    ("departure id not a number", _with(departure_id="abc"), 400, "invalid", "departure_id"),
    ("departure id huge", _with(departure_id=10**30), 400, "invalid", "departure_id"),
    ("seats zero", _with(seats=0), 400, "invalid", "seats"),
    ("seats negative", _with(seats=-3), 400, "invalid", "seats"),
    ("seats above maximum", _with(seats=11), 400, "invalid", "seats"),
    ("seats fractional", _with(seats=1.5), 400, "invalid", "seats"),
    ("seats boolean", _with(seats=True), 400, "invalid", "seats"),
    ("seats null", _with(seats=None), 400, "invalid", "seats"),
    ("unknown tier", _with(tier="gold"), 400, "invalid", "tier"),
    ("tier wrong type", _with(tier=["premium"]), 400, "invalid", "tier"),
    ("bad contact email", _with(contact_email="not-an-email"), 400, "invalid", "contact_email"),
    ("phone too long", _with(contact_phone="1" * 40), 400, "invalid", "contact_phone"),
    ("client sets the price", _with(total_price="0.01"), 400, "invalid", "total_price"),
    ("client sets the status", _with(status="cancelled"), 400, "invalid", "status"),
    ("client sets the owner", _with(user=1), 400, "invalid", "user"),
    ("client sets the currency", _with(currency="JPY"), 400, "invalid", "currency"),
    ("unknown field", _with(discount="100%"), 400, "invalid", "discount"),
]


@pytest.mark.parametrize(("body", "status", "code", "field"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_post_booking_with_bad_input_is_a_4xx_with_one_error_shape_and_writes_nothing(
    api, body, status, code, field
) -> None:
    # given
    departure = DepartureFactory(capacity=20)
    past = DepartureFactory(starts_at=timezone.now() - timedelta(days=1))
    if isinstance(body, dict):
        body = {
            k: {"<departure>": departure.pk, "<past>": past.pk}.get(v, v) if isinstance(v, str) else v
            for k, v in body.items()
        }

    # when
    if isinstance(body, bytes):
        response = api.generic("POST", BOOKINGS, body, content_type="application/json")
    else:
        response = api.post(BOOKINGS, body, format="json")

    # then
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    if field is not None:
        assert field in error["fields"], error
    assert not Booking.objects.exists()
    assert not OutboxEvent.objects.exists()
    assert sum(Departure.objects.values_list("seats_reserved", flat=True)) == 0


@pytest.mark.parametrize("key", ["", "x" * 129, "has space", "é-accent", "trailing-newline\n"])
def test_post_booking_with_an_invalid_idempotency_key_is_a_400(api, departure, key) -> None:
    response = api.post(
        BOOKINGS, {"departure_id": departure.pk, "seats": 1, "tier": "standard"}, HTTP_IDEMPOTENCY_KEY=key
    )
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["error"]["fields"]
    assert not Booking.objects.exists()


def test_post_booking_with_a_bad_token_is_a_401_in_the_error_shape(departure) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    response = client.post(BOOKINGS, {"departure_id": departure.pk, "seats": 1, "tier": "standard"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


@pytest.mark.parametrize(
    "where",
    [
        {"HTTP_AUTHORIZATION": "Token abc\x00def"},  # DRF would look this token up: a DataError, a 500
        {"HTTP_COOKIE": "sessionid=abcdefgh\x00ijklmn"},  # so would the session middleware
        {"HTTP_COOKIE": 'sessionid="abcdefgh\\000ijklmn"'},  # a quoted cookie's octal escape: NUL once parsed
        {"QUERY_STRING": "page=%00"},
    ],
    ids=["token", "session-cookie", "session-cookie-octal-escape", "query-string"],
)
def test_a_nul_byte_in_headers_or_url_is_a_400_in_the_error_shape_never_a_500(departure, where) -> None:
    response = APIClient().post(
        BOOKINGS, {"departure_id": departure.pk, "seats": 1, "tier": "standard"}, format="json", **where
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert not Booking.objects.exists()


JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
RAW_CASES = [
    # (case id, raw body, content type, expected status, expected error code)
    ("nested 1,100 levels", b"[" * 1100 + b"]" * 1100, JSON, 400, "parse_error"),
    ("nested 33 levels", b'{"seats":' + b"[" * 33 + b"]" * 33 + b"}", JSON, 400, "parse_error"),
    ("duplicate keys", b'{"departure_id": 1, "seats": 1, "seats": 9}', JSON, 400, "parse_error"),
    ("NaN", b'{"departure_id": 1, "seats": NaN, "tier": "standard"}', JSON, 400, "parse_error"),
    ("1e999", b'{"departure_id": 1e999, "seats": 1, "tier": "standard"}', JSON, 400, "parse_error"),
    ("5,000-digit integer", b'{"departure_id": ' + b"9" * 5000 + b', "seats": 1}', JSON, 400, "parse_error"),
    ("invalid UTF-8", b'{"departure_id": 1, "tier": "\xff\xfe"}', JSON, 400, "parse_error"),
    ("UTF-16 without charset", '{"seats": 1}'.encode("utf-16"), JSON, 400, "parse_error"),
    ("lone surrogate in a key", b'{"\\ud800": 1}', JSON, 400, "parse_error"),
    ("charset utf-16", b'{"seats": 1}', "application/json; charset=utf-16", 415, "unsupported_media_type"),
    ("charset rot13", b'{"seats": 1}', "application/json; charset=rot13", 415, "unsupported_media_type"),
    ("text/plain", b'{"seats": 1}', "text/plain", 415, "unsupported_media_type"),
    ("empty JSON body", b"", JSON, 400, "invalid"),
    ("form flood of 3,000 fields", "&".join(f"f{i}=1" for i in range(3000)).encode(), FORM, 400, "parse_error"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"), [c[1:] for c in RAW_CASES], ids=[c[0] for c in RAW_CASES]
)
def test_post_booking_with_a_hostile_body_is_a_4xx_in_the_error_shape_and_writes_nothing(
    api, body, content_type, status, code
) -> None:
    # given a departure one could book
    DepartureFactory(capacity=20)
    # when the body is hostile: too deep, ambiguous, non-finite, undecodable or of the wrong type
    response = api.generic("POST", BOOKINGS, body, content_type=content_type)
    # then it is refused in the one error shape, small, and nothing is written
    assert response.status_code == status, response.content[:300]
    assert response.json()["error"]["code"] == code
    assert len(response.content) < 1024
    assert not Booking.objects.exists()
    assert not OutboxEvent.objects.exists()
