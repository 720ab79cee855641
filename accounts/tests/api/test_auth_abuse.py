"""Brute force and floods against the auth endpoints and the admin login, with the real Redis
(throttles) and PostgreSQL (django-axes lockout): 429 with Retry-After, and an operator can unlock."""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from bookings.tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

TOKEN = "/api/auth/token/"
REGISTER = "/api/auth/register/"
ADMIN_LOGIN = "/admin/login/"


@pytest.fixture(autouse=True)
def _own_counters(settings):
    """Throttle counters under a prefix of this test's own: no other test's requests count here."""
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": f"abuse.{uuid.uuid4().hex[:8]}"}}


def _rates(monkeypatch, **rates: str) -> None:
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES, **rates})


def _no_rate_limits(monkeypatch) -> None:
    _rates(monkeypatch, auth_token="1000/min", auth_token_username="1000/min")


def _assert_429_in_the_error_shape(response) -> None:
    assert response.status_code == 429, response.content
    assert int(response["Retry-After"]) > 0
    assert set(response.json()["error"]) >= {"code", "message"}


def test_60_wrong_passwords_for_one_account_end_in_429s_and_lock_out_even_the_right_one() -> None:
    # given
    user = UserFactory()
    client = APIClient(REMOTE_ADDR="10.7.0.1")

    # when
    statuses = [
        client.post(TOKEN, {"username": user.username, "password": f"guess-{i}"}, format="json").status_code
        for i in range(60)
    ]
    right = client.post(TOKEN, {"username": user.username, "password": TEST_PASSWORD}, format="json")

    # then: a few 400s, then only 429s; the right password does not get in while locked
    limit = settings.AXES_FAILURE_LIMIT
    assert statuses[: limit - 1] == [400] * (limit - 1), statuses
    assert set(statuses[limit:]) == {429}, statuses
    _assert_429_in_the_error_shape(right)


def test_a_locked_out_username_stays_locked_from_another_address_and_in_another_case(monkeypatch) -> None:
    _no_rate_limits(monkeypatch)  # the lockout alone
    # given: the failure limit reached from one address
    user = UserFactory(username="Dominique")
    for i in range(settings.AXES_FAILURE_LIMIT):
        APIClient(REMOTE_ADDR="10.7.1.1").post(TOKEN, {"username": "dominique", "password": f"g{i}"}, format="json")

    # when
    response = APIClient(REMOTE_ADDR="10.7.1.2").post(
        TOKEN, {"username": "DOMINIQUE", "password": TEST_PASSWORD}, format="json"
    )

    # then
    _assert_429_in_the_error_shape(response)
    assert response.json()["error"]["code"] == "locked_out"
    assert user.username == "Dominique"


def test_an_operator_unlocks_a_username_with_axes_reset_username(monkeypatch) -> None:
    _no_rate_limits(monkeypatch)  # the lockout alone
    # given: a locked-out account
    user = UserFactory()
    client = APIClient(REMOTE_ADDR="10.7.2.1")
    for i in range(settings.AXES_FAILURE_LIMIT):
        client.post(TOKEN, {"username": user.username, "password": f"g{i}"}, format="json")
    assert client.post(TOKEN, {"username": user.username, "password": TEST_PASSWORD}).status_code == 429

    # when: the runbook's command (the username as counted: case-folded)
    call_command("axes_reset_username", user.username.casefold())

    # then
    assert client.post(TOKEN, {"username": user.username, "password": TEST_PASSWORD}).status_code == 200


def test_one_address_trying_many_usernames_is_locked_out(monkeypatch) -> None:
    _no_rate_limits(monkeypatch)  # the lockout alone
    # given
    client = APIClient(REMOTE_ADDR="10.7.3.1")
    victim = UserFactory()

    # when: failures spread over many usernames, then a valid login from the same address
    for i in range(settings.AXES_FAILURE_LIMIT):
        client.post(TOKEN, {"username": f"nobody{i}", "password": "x"}, format="json")
    response = client.post(TOKEN, {"username": victim.username, "password": TEST_PASSWORD}, format="json")

    # then
    _assert_429_in_the_error_shape(response)
    # ... while the victim logs in fine from elsewhere
    assert (
        APIClient(REMOTE_ADDR="10.7.3.2")
        .post(TOKEN, {"username": victim.username, "password": TEST_PASSWORD})
        .status_code
        == 200
    )


def test_token_requests_are_throttled_per_address(monkeypatch) -> None:
    # given
    _rates(monkeypatch, auth_token="3/min")
    client = APIClient(REMOTE_ADDR="10.7.4.1")

    # when: valid-looking requests for different (unknown) usernames, so no lockout is involved
    statuses = [client.post(TOKEN, {"username": f"n{i}"}, format="json").status_code for i in range(5)]
    elsewhere = APIClient(REMOTE_ADDR="10.7.4.2").post(TOKEN, {"username": "n9"}, format="json")

    # then
    assert statuses == [400, 400, 400, 429, 429]
    assert elsewhere.status_code == 400


def test_the_client_address_is_not_taken_from_a_spoofed_x_forwarded_for(monkeypatch) -> None:
    # given
    _rates(monkeypatch, auth_token="2/min")
    client = APIClient(REMOTE_ADDR="10.7.5.1")

    # when: each request claims another address
    statuses = [
        client.post(TOKEN, {"username": f"s{i}"}, format="json", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code
        for i in range(4)
    ]

    # then
    assert statuses == [400, 400, 429, 429]


def test_token_requests_are_throttled_per_username_from_any_address(monkeypatch) -> None:
    # given
    _rates(monkeypatch, auth_token_username="3/min")
    user = UserFactory(username="Target")

    # when: one username (in several cases) from many addresses, a correct password at the end
    statuses = [
        APIClient(REMOTE_ADDR=f"10.7.6.{i}").post(TOKEN, {"username": name}, format="json").status_code
        for i, name in enumerate(["Target", "target", "TARGET", "target"])
    ]
    last = APIClient(REMOTE_ADDR="10.7.6.99").post(TOKEN, {"username": "target", "password": TEST_PASSWORD})

    # then
    assert statuses == [400, 400, 400, 429]
    _assert_429_in_the_error_shape(last)
    assert user.username == "Target"


def test_registration_is_throttled_per_address_with_429_and_retry_after(monkeypatch) -> None:
    # given
    _rates(monkeypatch, auth_register="2/hour")
    client = APIClient(REMOTE_ADDR="10.7.7.1")

    # when
    responses = [
        client.post(
            REGISTER,
            {"username": f"reg{i}", "email": f"reg{i}@example.com", "password": "a-long-unusual-passphrase"},
            format="json",
        )
        for i in range(3)
    ]

    # then
    assert [r.status_code for r in responses] == [201, 201, 429]
    _assert_429_in_the_error_shape(responses[2])
    assert responses[2].json()["error"]["code"] == "throttled"


def test_registration_is_throttled_per_username_from_any_address(monkeypatch) -> None:
    # given
    _rates(monkeypatch, auth_register_username="2/hour")

    # when: one wanted name, from many addresses (the first takes it, the next are 400s, then 429)
    statuses = [
        APIClient(REMOTE_ADDR=f"10.7.8.{i}")
        .post(REGISTER, {"username": "Wanted", "email": f"w{i}@example.com", "password": "pw"}, format="json")
        .status_code
        for i in range(3)
    ]

    # then
    assert statuses == [400, 400, 429]


def test_admin_login_locks_out_after_repeated_failures_with_429_and_retry_after() -> None:
    # given
    admin = UserFactory(is_staff=True, is_superuser=True)
    client = Client(REMOTE_ADDR="10.7.9.1")

    # when
    statuses = [
        client.post(ADMIN_LOGIN, {"username": admin.username, "password": f"guess-{i}"}).status_code for i in range(60)
    ]
    right = client.post(ADMIN_LOGIN, {"username": admin.username, "password": TEST_PASSWORD})

    # then: the login form again (200) a few times, then 429s; the right password does not get in
    limit = settings.AXES_FAILURE_LIMIT
    assert statuses[: limit - 1] == [200] * (limit - 1), statuses
    assert set(statuses[limit:]) == {429}, statuses
    assert right.status_code == 429
    assert int(right["Retry-After"]) == settings.AXES_COOLOFF_TIME.total_seconds()
    assert "_auth_user_id" not in client.session


def test_admin_login_still_works_below_the_failure_limit() -> None:
    # given
    admin = UserFactory(is_staff=True, is_superuser=True)
    client = Client(REMOTE_ADDR="10.7.10.1")
    client.post(ADMIN_LOGIN, {"username": admin.username, "password": "wrong"})

    # when
    response = client.post(ADMIN_LOGIN, {"username": admin.username, "password": TEST_PASSWORD})

    # then
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(admin.pk)
