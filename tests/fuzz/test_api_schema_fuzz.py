"""Schemathesis over every operation of ``/api/schema/``, anonymous and with a token, in process
through the WSGI app: no 5xx, and every documented response matches its schema.

Bounded (25 examples per operation, no deadline) so the whole module stays well under two minutes.
"""

from __future__ import annotations

import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def api_schema(db):  # type: ignore[no-untyped-def]
    """The live schema, served by the WSGI app in this process.

    Like Django's test client, requests must not close the test's database connection (it holds
    the test transaction), so ``close_old_connections`` is detached while the test runs.
    """
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    from tourapp.wsgi import application

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/schema/", application)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.fixture
def token(db, settings_fixture_cache):  # type: ignore[no-untyped-def]
    from rest_framework.authtoken.models import Token

    from availability.tests.factories import DepartureFactory
    from bookings.tests.factories import UserFactory

    DepartureFactory.create_batch(2)  # something real to book and list
    return Token.objects.create(user=UserFactory()).key


@pytest.fixture
def settings_fixture_cache(settings):  # type: ignore[no-untyped-def]
    """Throttle counters in a prefix of our own, so earlier runs never throttle this one."""
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": f"fuzz.{uuid.uuid4().hex[:8]}"}}


# Generating the cases (schemathesis' coverage phase) is CPU-bound and grows with every bounded
# field of the schema: on a loaded machine it alone passed the suite's 300 s default.
@pytest.mark.timeout(900)
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_every_operation_answers_without_5xx_and_as_documented_anonymous_and_authenticated(case, token):
    # The API is JSON; DRF also parses forms, but schemathesis cannot encode every generated
    # body as a form (a list, say), so bodies are always sent as JSON.
    if case.media_type and case.media_type != "application/json":
        case.media_type = "application/json"
    case.call_and_validate(checks=CHECKS)
    case.call_and_validate(headers={"Authorization": f"Token {token}"}, checks=CHECKS)
