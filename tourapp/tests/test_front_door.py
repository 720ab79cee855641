"""The front door: no debug page or secret in any answer, and every /api/ error in the one JSON shape.

Unknown paths, 405s, a bad Host, a body over the cap, the missing-slash POST and crashes (500) all
answer in ``{"error": {"code", "message"}}`` under /api/; DEBUG is off unless asked for, refused in
production, and even on it masks the credentials inside URLs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client
from rest_framework.exceptions import ValidationError

from tourapp.exceptions import api_exception_handler

ROOT = Path(__file__).resolve().parents[2]
CRASH_URLS = "tourapp.tests.crash_urls"


def _settings_value(name: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "DJANGO_ENV", "DJANGO_SETTINGS_MODULE")}
    return subprocess.run(
        [sys.executable, "-c", f"import tourapp.settings as s; print(s.{name})"],
        cwd=ROOT,
        env=environment | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _is_error_shape(response, code: str | None = None) -> bool:  # type: ignore[no-untyped-def]
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    error = json.loads(response.content)["error"]
    assert set(error) <= {"code", "message", "fields"} and error["message"]
    return code is None or error["code"] == code


# ------------------------------------------------------------------ DEBUG


def test_debug_is_off_by_default_in_development():
    result = _settings_value("DEBUG", DJANGO_ENV="development")
    assert result.stdout.strip() == "False", result.stderr


def test_debug_true_turns_debug_on_in_development():
    result = _settings_value("DEBUG", DJANGO_ENV="development", DEBUG="true")
    assert result.stdout.strip() == "True", result.stderr


def test_production_refuses_to_start_with_debug_on():
    result = _settings_value(
        "DEBUG", DJANGO_ENV="production", DEBUG="true", DJANGO_SECRET_KEY="p" * 60, ALLOWED_HOSTS="tours.example.com"
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: DEBUG must be off when DJANGO_ENV=production" in result.stderr


# ------------------------------------------------------------------ secrets in error reports


@pytest.mark.django_db
def test_the_debug_page_masks_credentials_in_settings_and_in_frame_variables(settings):
    # given DEBUG on (development, asked for), broker URLs with passwords, a view that crashes
    settings.DEBUG = True
    settings.ROOT_URLCONF = CRASH_URLS
    settings.CELERY_BROKER_URL = "amqp://tourapp:broker-pass@127.0.0.1:5672/tourapp"
    settings.CACHES = {**settings.CACHES, "other": {"LOCATION": "redis://:redis-pass@127.0.0.1:6379/1"}}
    settings.EXTRA_URLS = ["postgres://u:pg-pass@db.internal/tourapp"]

    # when the crash is shown as Django's debug page
    response = Client(raise_request_exception=False).get("/crash/")

    # then it is the debug page, and no password appears in it: settings or local variables
    page = response.content.decode()
    assert response.status_code == 500 and "Traceback" in page
    for secret in ("broker-pass", "redis-pass", "pg-pass", "s3cret-in-a-local-url"):
        assert secret not in page, secret
    assert "amqp://********@127.0.0.1:5672/tourapp" in page


def test_url_credentials_are_masked_but_hosts_and_neighbours_kept():
    from tourapp.error_reports import url_credentials_mask

    text = "['redis://:pw@h:6379/0', 'a@b.c', 'amqp://u:p@ss@host/v', 'http://example.com/x@y']"
    assert url_credentials_mask(text) == (
        "['redis://********@h:6379/0', 'a@b.c', 'amqp://********@host/v', 'http://example.com/x@y']"
    )


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True])
def test_a_foreign_host_header_is_a_short_400_without_settings(settings, debug):
    settings.DEBUG = debug
    client = Client(raise_request_exception=False)
    for path in ("/api/", "/api/bookings/", "/admin/"):
        response = client.get(path, HTTP_HOST="evil.example")
        assert response.status_code == 400
        assert len(response.content) < 200 and b"CELERY" not in response.content
    assert _is_error_shape(client.get("/api/tours/", HTTP_HOST="evil.example"), "invalid_host")


# ------------------------------------------------------------------ every /api/ error in the JSON shape


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [False, True])
def test_a_post_to_an_api_url_without_its_slash_is_a_json_404_naming_the_url(settings, debug):
    # given DEBUG off (Django would answer a 301 that drops the body) or on (a RuntimeError, a 500)
    settings.DEBUG = debug
    # when
    response = Client(raise_request_exception=False).post(
        "/api/bookings", {"departure_id": 1}, content_type="application/json"
    )
    # then
    assert response.status_code == 404
    assert _is_error_shape(response, "not_found")
    assert "POST /api/bookings/" in response.json()["error"]["message"]


@pytest.mark.django_db
def test_a_get_without_the_slash_still_redirects_to_it(client):
    response = client.get("/api/tours")
    assert (response.status_code, response["Location"]) == (301, "/api/tours/")


@pytest.mark.django_db
def test_a_wrong_method_is_a_405_in_the_error_shape(client):
    response = client.delete("/api/tours/")
    assert response.status_code == 405
    assert _is_error_shape(response, "method_not_allowed")
    assert "GET" in response["Allow"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/crash/", "/api/crash-drf/"])
def test_a_crash_under_the_api_is_a_json_500_without_detail(settings, path):
    settings.ROOT_URLCONF = CRASH_URLS
    response = Client(raise_request_exception=False).get(path)
    assert response.status_code == 500
    assert _is_error_shape(response, "server_error")
    assert b"broker" not in response.content and b"Traceback" not in response.content


@pytest.mark.django_db
def test_a_crash_outside_the_api_keeps_djangos_short_500_page(settings):
    settings.ROOT_URLCONF = CRASH_URLS
    response = Client(raise_request_exception=False).get("/crash/")
    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html") and b"Traceback" not in response.content


# ------------------------------------------------------------------ bodies


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/auth/register/", "/api/auth/token/", "/api/bookings/"])
def test_2kb_of_nested_json_is_a_400_not_a_recursion_error(client, path):
    # given the body: ~1,100 levels of [[[...]]] in 2 KB
    body = b"[" * 1100 + b"]" * 1100
    # when
    response = client.generic("POST", path, body, content_type="application/json")
    # then
    assert response.status_code in (400, 401), response.content[:300]
    assert _is_error_shape(response)


@pytest.mark.django_db
@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded", "text/plain"])
def test_a_body_over_the_cap_is_a_413_before_anything_reads_it(client, settings, content_type):
    body = b"u=" + b"x" * settings.REQUEST_MAX_BODY_BYTES
    response = client.generic("POST", "/api/auth/token/", body, content_type=content_type)
    assert response.status_code == 413
    assert _is_error_shape(response, "request_too_large")
    assert len(response.content) < 200  # nothing of the body comes back


@pytest.mark.django_db
def test_a_body_over_the_cap_is_a_413_outside_the_api_too(client, settings):
    response = client.generic("POST", "/admin/login/", b"u=" + b"x" * settings.REQUEST_MAX_BODY_BYTES)
    assert response.status_code == 413 and len(response.content) < 200


@pytest.mark.django_db
def test_a_chunked_body_the_server_cannot_delimit_is_a_411(client):
    # Django's development server passes the raw socket: reading a chunked body would never end.
    response = client.generic("POST", "/api/auth/token/", b"", HTTP_TRANSFER_ENCODING="chunked")
    assert response.status_code == 411
    assert _is_error_shape(response, "length_required")


def test_the_body_read_is_bounded_whatever_the_stream_holds(settings):
    import io

    from tourapp.parsers import RequestBodyTooLarge, body_read_bounded

    settings.REQUEST_MAX_BODY_BYTES = 10
    assert body_read_bounded(io.BytesIO(b"x" * 10)) == b"x" * 10
    with pytest.raises(RequestBodyTooLarge):
        body_read_bounded(io.BytesIO(b"x" * 11))


def test_an_error_listing_thousands_of_long_field_messages_stays_small():
    # given a validation error as a flood of unknown fields would produce it
    error = ValidationError({f"field{i}" + "n" * 500: ["Unknown field. " + "m" * 10_000] for i in range(5000)})
    # when the API handles it
    response = api_exception_handler(error, {})
    # then the answer names some fields and says how many more, in a few KB
    assert response is not None and response.status_code == 400
    rendered = json.dumps(response.data)
    assert len(rendered) < 16 * 1024
    assert "4970 more fields not shown." in rendered
