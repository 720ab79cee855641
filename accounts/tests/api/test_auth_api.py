"""A new user registers, gets a token, and books with it; token exchange for existing users.
Uniqueness whatever the case, and every string capped at what its column holds."""

from __future__ import annotations

import time

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from availability.tests.factories import DepartureFactory
from bookings.tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

REGISTER = "/api/auth/register/"
TOKEN = "/api/auth/token/"
GOOD_PASSWORD = "a-long-unusual-passphrase"


def test_register_creates_a_user_and_returns_a_token_that_can_book() -> None:
    # given
    client = APIClient()
    departure = DepartureFactory(capacity=5)

    # when
    response = client.post(
        REGISTER, {"username": "newbie", "email": "newbie@example.com", "password": GOOD_PASSWORD}, format="json"
    )

    # then
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["username"] == "newbie"
    assert "password" not in body
    client.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    booked = client.post("/api/bookings/", {"departure_id": departure.pk, "seats": 1, "tier": "standard"})
    assert booked.status_code == 201
    assert booked.json()["contact_email"] == "newbie@example.com"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "taken", "email": "a@example.com", "password": GOOD_PASSWORD}, "username"),
        ({"username": "TaKeN", "email": "a@example.com", "password": GOOD_PASSWORD}, "username"),
        ({"username": "fresh", "email": "Taken@EXAMPLE.com", "password": GOOD_PASSWORD}, "email"),
        ({"username": "weak", "email": "b@example.com", "password": "123"}, "password"),
        ({"username": "bad name!", "email": "c@example.com", "password": GOOD_PASSWORD}, "username"),
        ({"username": "noemail", "email": "nope", "password": GOOD_PASSWORD}, "email"),
        ({"username": "staffy", "email": "d@example.com", "password": "x" * 20, "is_staff": True}, "is_staff"),
        ({"username": "u" * 151, "email": "e@example.com", "password": GOOD_PASSWORD}, "username"),
        ({"username": "longmail", "email": "a" * 243 + "@example.com", "password": GOOD_PASSWORD}, "email"),
        ({"username": "longpass", "email": "f@example.com", "password": "p" * 129}, "password"),
    ],
    ids=[
        "taken",
        "taken in another case",
        "email taken in another case",
        "weak password",
        "bad username",
        "bad email",
        "privilege field",
        "151-char username",
        "255-char email",
        "129-char password",
    ],
)
def test_register_rejects_bad_input_with_field_errors(body, field) -> None:
    # given
    UserFactory(username="taken", email="taken@example.com")
    users_before = get_user_model().objects.count()

    # when
    response = APIClient(REMOTE_ADDR="10.9.0.1").post(REGISTER, body, format="json")

    # then
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert get_user_model().objects.count() == users_before


def test_register_with_a_1_mb_password_is_a_cheap_400() -> None:
    # when
    started = time.perf_counter()
    response = APIClient(REMOTE_ADDR="10.9.0.2").post(
        REGISTER, {"username": "huge", "email": "huge@example.com", "password": "p" * 1_000_000}, format="json"
    )
    elapsed = time.perf_counter() - started

    # then: refused by length (or by the body cap), before anything hashes it
    assert response.status_code in (400, 413), response.content
    assert response.json()["error"]["code"] in ("invalid", "request_too_large", "payload_too_large")
    assert elapsed < 2.0
    assert not get_user_model().objects.filter(username="huge").exists()


def test_token_endpoint_exchanges_credentials_for_a_stable_token() -> None:
    # given
    user = UserFactory()

    # when
    first = APIClient().post(TOKEN, {"username": user.username, "password": TEST_PASSWORD})
    second = APIClient().post(TOKEN, {"username": user.username, "password": TEST_PASSWORD})
    wrong = APIClient().post(TOKEN, {"username": user.username, "password": "nope"})

    # then
    assert first.status_code == second.status_code == 200
    assert first.json()["token"] == second.json()["token"]
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "invalid_credentials"


def test_token_login_with_the_username_in_another_case_is_the_same_account() -> None:
    # given
    user = UserFactory(username="Camille")
    own = APIClient().post(TOKEN, {"username": "Camille", "password": TEST_PASSWORD}).json()["token"]

    # when
    other_case = APIClient().post(TOKEN, {"username": "cAMILLE", "password": TEST_PASSWORD})

    # then
    assert other_case.status_code == 200
    assert other_case.json()["token"] == own
    assert user.auth_token.key == own


@pytest.mark.parametrize(
    "body",
    [{"username": "u" * 151, "password": "x"}, {"username": "someone", "password": "p" * 129}],
    ids=["151-char username", "129-char password"],
)
def test_token_with_over_long_credentials_is_a_400(body) -> None:
    response = APIClient(REMOTE_ADDR="10.9.0.3").post(TOKEN, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"
