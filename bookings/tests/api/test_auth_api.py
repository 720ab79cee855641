"""A new user registers, gets a token, and books with it; token exchange for existing users."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from bookings.tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def test_register_creates_a_user_and_returns_a_token_that_can_book(departure) -> None:
    # given
    client = APIClient()

    # when
    response = client.post(
        "/api/auth/register/",
        {"username": "newbie", "email": "newbie@example.com", "password": "a-long-unusual-passphrase"},
        format="json",
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
        ({"username": "taken", "email": "a@example.com", "password": "a-long-unusual-passphrase"}, "username"),
        ({"username": "weak", "email": "b@example.com", "password": "123"}, "password"),
        ({"username": "bad name!", "email": "c@example.com", "password": "a-long-unusual-passphrase"}, "username"),
        ({"username": "noemail", "email": "nope", "password": "a-long-unusual-passphrase"}, "email"),
        ({"username": "staffy", "email": "d@example.com", "password": "x" * 20, "is_staff": True}, "is_staff"),
    ],
    ids=["taken", "weak password", "bad username", "bad email", "privilege field"],
)
def test_register_rejects_bad_input_with_field_errors(body, field) -> None:
    # given
    UserFactory(username="taken")
    users_before = get_user_model().objects.count()

    # when
    response = APIClient().post("/api/auth/register/", body, format="json")

    # then
    assert response.status_code == 400
    assert field in response.json()["error"]["fields"]
    assert get_user_model().objects.count() == users_before


def test_token_endpoint_exchanges_credentials_for_a_stable_token() -> None:
    # given
    user = UserFactory()

    # when
    first = APIClient().post("/api/auth/token/", {"username": user.username, "password": TEST_PASSWORD})
    second = APIClient().post("/api/auth/token/", {"username": user.username, "password": TEST_PASSWORD})
    wrong = APIClient().post("/api/auth/token/", {"username": user.username, "password": "nope"})

    # then
    assert first.status_code == second.status_code == 200
    assert first.json()["token"] == second.json()["token"]
    assert wrong.status_code == 400
    assert wrong.json()["error"]["code"] == "invalid_credentials"
