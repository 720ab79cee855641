"""The OpenAPI schema generates without warnings, validates, and documents how to get a token; the docs
and the browsable API root are served."""

from __future__ import annotations

from urllib.parse import urlsplit

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
    assert client.get("/api/redoc/").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_docs_pages_are_html_even_to_a_client_asking_for_json(client, path) -> None:
    # DRF would negotiate a bare "406 Not Acceptable" page: a docs page has one representation
    response = client.get(path, HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_the_api_root_lists_every_endpoint_that_takes_no_parameter(client) -> None:
    # when
    response = client.get("/api/", HTTP_ACCEPT="application/json")
    # then
    assert response.status_code == 200
    listed = {name: urlsplit(url).path for name, url in response.json().items()}
    assert (
        listed.items()
        >= {
            "tours": "/api/tours/",
            "bookings": "/api/bookings/",
            "auth/token": "/api/auth/token/",
            "auth/register": "/api/auth/register/",
            "schema": "/api/schema/",
            "docs": "/api/docs/",
            "redoc": "/api/redoc/",
        }.items()
    )


@pytest.mark.django_db
def test_the_api_root_is_browsable(client) -> None:
    response = client.get("/api/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    assert b"tourapp API" in response.content and b"/api/bookings/" in response.content
