"""``tourapp.queries.token_with_user``: the API token lookup agrees with the ORM query it replaces."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token

from bookings.tests.factories import UserFactory
from tourapp.queries import token_with_user

pytestmark = pytest.mark.django_db


def test_token_with_user_reads_the_token_and_its_user_as_the_orm_does() -> None:
    # given
    token = Token.objects.create(user=UserFactory(first_name="Ada"))
    expected = Token.objects.select_related("user").get(key=token.key)

    # when
    with CaptureQueriesContext(connection) as captured:
        found = token_with_user(key=token.key)

    # then: one statement, every field of both as the ORM reads them
    assert found is not None and len(captured.captured_queries) == 1
    assert (found.key, found.created, found.user_id) == (expected.key, expected.created, expected.user_id)
    for field in type(expected.user)._meta.concrete_fields:
        assert getattr(found.user, field.attname) == getattr(expected.user, field.attname), field.name
    assert not found._state.adding and not found.user._state.adding


def test_token_with_user_of_an_unknown_key_finds_nothing() -> None:
    assert token_with_user(key="0" * 40) is None
