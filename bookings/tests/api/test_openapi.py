"""The OpenAPI schema generates without warnings, validates, and documents how to get a token."""

from __future__ import annotations

import pytest
from django.core.management import call_command


def test_openapi_schema_validates_without_warnings_and_documents_auth_and_bookings(tmp_path) -> None:
    # when
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))

    # then
    schema = out.read_text()
    for path in ("/api/auth/token/:", "/api/auth/register/:", "/api/bookings/{booking_id}/cancel/:", "/api/tours/:"):
        assert path in schema
    assert "Idempotency-Key" in schema


@pytest.mark.django_db
def test_schema_and_docs_are_served(client) -> None:
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200
