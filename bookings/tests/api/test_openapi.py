"""The OpenAPI schema generates without warnings, validates, and documents how to get a token; every
operation has a summary, a description and examples, every field and parameter a description; the
docs, the browsable API root and the views' user-facing descriptions are served."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator
from rest_framework.renderers import BrowsableAPIRenderer
from rest_framework.schemas.generators import EndpointEnumerator

HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def _operations(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield f"{method.upper()} {path}", operation


def _undocumented_properties(node: Any, where: str) -> Iterator[str]:
    """Every property, at any depth (nested objects, array items, allOf/oneOf parts), lacking a description."""
    if isinstance(node, list):
        for index, child in enumerate(node):
            yield from _undocumented_properties(child, f"{where}[{index}]")
        return
    if not isinstance(node, dict):
        return
    for name, prop in node.get("properties", {}).items():
        if not str(prop.get("description", "")).strip():
            yield f"{where}.{name}"
        yield from _undocumented_properties(prop, f"{where}.{name}")
    for key in ("items", "allOf", "oneOf", "anyOf", "additionalProperties"):
        if key in node:
            yield from _undocumented_properties(node[key], f"{where}.{key}")


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


def test_every_operation_has_a_summary_and_a_description(schema) -> None:
    # when
    missing = [
        f"{name}: {part}"
        for name, operation in _operations(schema)
        for part in ("summary", "description")
        if not str(operation.get(part, "")).strip()
    ]

    # then
    assert len(list(_operations(schema))) >= 8
    assert missing == []


def test_every_operation_has_examples_for_its_request_body_and_its_success_responses(schema) -> None:
    # when
    missing = []
    for name, operation in _operations(schema):
        body = operation.get("requestBody", {}).get("content", {}).get("application/json")
        if body is not None and not body.get("examples"):
            missing.append(f"{name}: request")
        for status, response in operation["responses"].items():
            content = response.get("content", {}).get("application/json")
            if status.startswith("2") and content is not None and not content.get("examples"):
                missing.append(f"{name}: {status}")

    # then
    assert missing == []


def test_paginated_list_examples_have_the_page_shape(schema) -> None:
    example = schema["paths"]["/api/bookings/"]["get"]["responses"]["200"]["content"]["application/json"]["examples"]
    page = next(iter(example.values()))["value"]
    assert set(page) == {"count", "next", "previous", "results"}
    assert page["count"] == len(page["results"]) == 1


def test_every_schema_property_has_a_description(schema) -> None:
    # when
    missing = [
        found
        for name, component in schema["components"]["schemas"].items()
        for found in _undocumented_properties(component, name)
    ]

    # then
    assert "BookingOutput" in schema["components"]["schemas"]
    assert missing == []


def test_every_parameter_has_a_description(schema) -> None:
    missing = [
        f"{name}: {parameter['name']}"
        for name, operation in _operations(schema)
        for parameter in operation.get("parameters", [])
        if not str(parameter.get("description", "")).strip()
    ]
    assert missing == []


def test_the_bookings_list_documents_its_filters_and_page_size(schema) -> None:
    parameters = {p["name"] for p in schema["paths"]["/api/bookings/"]["get"]["parameters"]}
    assert parameters >= {"status", "payment_status", "departure", "tour", "starts_after", "starts_before"}
    assert parameters >= {"page", "page_size"}
    assert "page_size" in {p["name"] for p in schema["paths"]["/api/tours/"]["get"]["parameters"]}


def test_seats_left_projected_is_documented_as_null_until_the_read_model_has_an_event(schema) -> None:
    field = schema["components"]["schemas"]["DepartureOutput"]["properties"]["seats_left_projected"]
    assert field["nullable"] is True
    assert "null until" in field["description"]


def test_error_responses_declared_by_views_use_the_error_shape(schema) -> None:
    responses = schema["paths"]["/api/bookings/"]["post"]["responses"]
    for status in ("400", "409", "429"):
        assert responses[status]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
        assert responses[status]["description"]


def _browsable_api_views() -> Iterator[tuple[str, type]]:
    for path, _method, callback in EndpointEnumerator().get_api_endpoints():
        view_class = getattr(callback, "cls", None)
        if path.startswith("/api/") and BrowsableAPIRenderer in getattr(view_class, "renderer_classes", ()):
            yield path, view_class


def test_every_api_view_describes_itself_to_users_not_to_developers() -> None:
    # The browsable API shows a view's docstring: it must exist and carry no developer markup.
    views = list(_browsable_api_views())
    assert {path for path, _ in views} >= {"/api/", "/api/bookings/", "/api/tours/", "/api/auth/token/"}
    for path, view_class in views:
        description = view_class().get_view_description()
        assert description.strip(), path
        assert "``" not in description and ":class:" not in description, (path, description)


@pytest.mark.django_db
def test_the_browsable_bookings_page_shows_the_user_facing_description(client_for, customer) -> None:
    # when
    response = client_for(customer).get("/api/bookings/", HTTP_ACCEPT="text/html")

    # then
    assert response.status_code == 200
    assert b"Your bookings. GET lists them, newest first" in response.content
    # as paragraphs: the docstring's wrapped lines are joined, not broken where the source wrapped
    assert b"narrow the list with status, payment_status, departure" in response.content
    assert b"one URL, two operations" not in response.content
