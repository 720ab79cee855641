"""Fixtures for the bookings tests: a customer with a token client, and an upcoming departure."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from availability.models import Departure
from availability.tests.factories import DepartureFactory
from bookings.tests.factories import UserFactory


@pytest.fixture
def customer():
    return UserFactory()


@pytest.fixture
def departure() -> Departure:
    return DepartureFactory(capacity=20)


@pytest.fixture
def client_for():
    """``client_for(user)``: an API client authenticated with the user's token."""

    def make(user) -> APIClient:
        client = APIClient()
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        return client

    return make


@pytest.fixture
def api(customer, client_for) -> APIClient:
    return client_for(customer)
