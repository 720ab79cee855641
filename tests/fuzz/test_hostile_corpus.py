"""A hostile corpus against every write endpoint, over real HTTP to a real gunicorn: no 5xx.

Where schemathesis sends what the schema allows, this sends what an attacker sends: deep nesting,
over-long strings in every string field, huge bodies (announced and chunked), floods of unknown
fields, bad encodings and charsets, NULs, non-finite and huge numbers, wrong types, duplicate
keys, empty bodies, wrong content types and abused headers. Every case goes to every write
operation of the live OpenAPI schema (its path parameters filled in) and to the admin login form,
anonymous and with a token.

For each answer: never a 5xx; under ``/api/`` every error is JSON in the one error shape; no error
body is larger than 16 KB (nothing big is echoed back) and none carries a traceback or a setting.
Cases that gunicorn itself refuses before the app sees them (a malformed request head) are named
``server_level``: there only the status is checked (a 4xx without the app's correlation header).
One JSON line reports how many cases and requests were sent, and how many 5xx came back.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.fuzz.live import Gunicorn, RawResponse, raw_request

MAX_ERROR_BODY = 16 * 1024
CAP = 256 * 1024  # REQUEST_MAX_BODY_BYTES's default, which the server below runs with
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
LEAKS = (b"Traceback", b"CELERY_BROKER_URL", b"SECRET_KEY", b"tourapp:tourapp@", b"DATABASES")

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass(frozen=True)
class Target:
    method: str
    path: str
    fields: dict[str, Any]  # a plausible body for the endpoint, that the cases corrupt
    api: bool = True


@dataclass(frozen=True)
class Case:
    name: str
    kind: str
    build: Callable[[Target], dict[str, Any]]  # -> raw_request keyword arguments
    server_level: bool = False


def _json(body: Any, content_type: str = JSON, **extra: Any) -> dict[str, Any]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return {"body": raw, "headers": [("Content-Type", content_type)], **extra}


def _with(target: Target, **changes: Any) -> dict[str, Any]:
    return {**target.fields, **changes}


STRING_FIELDS = ("username", "email", "password", "tier", "contact_email", "contact_phone", "departure_id")


def _cases() -> list[Case]:
    cases: list[Case] = [
        # -- deep nesting
        Case("deep_array_1100", "nesting", lambda t: _json(b"[" * 1100 + b"]" * 1100)),
        Case("deep_object_1100", "nesting", lambda t: _json(b'{"a":' * 1100 + b"1" + b"}" * 1100)),
        Case("deep_array_unclosed_200k", "nesting", lambda t: _json(b"[" * 200_000)),
        Case("deep_mixed_2kb", "nesting", lambda t: _json(b'[{"a":' * 300 + b"1" + b"}]" * 300)),
        Case(
            "deep_value_of_a_field",
            "nesting",
            lambda t: _json(json.dumps(_with(t, tier="@")).replace('"@"', "[" * 900 + "]" * 900).encode()),
        ),
        Case("depth_33", "nesting", lambda t: _json(b"[" * 33 + b"]" * 33)),
        # -- huge bodies
        Case("json_10mb_announced", "huge", lambda t: _json(b" " * 10_000_000)),
        Case("json_cap_plus_one", "huge", lambda t: _json(b" " * (CAP + 1))),
        Case("form_10mb", "huge", lambda t: {"body": b"a=" + b"x" * 10_000_000, "headers": [("Content-Type", FORM)]}),
        Case("json_10mb_chunked", "huge", lambda t: _json(b" " * 10_000_000, chunked=True)),
        Case("json_small_chunked", "huge", lambda t: _json(t.fields, chunked=True)),
        Case(
            "multipart_2mb_file",
            "huge",
            lambda t: {
                "body": b"--b\r\nContent-Disposition: form-data; name=f; filename=a.bin\r\n\r\n"
                + b"x" * 2_000_000
                + b"\r\n--b--\r\n",
                "headers": [("Content-Type", "multipart/form-data; boundary=b")],
            },
        ),
        # -- unknown-field floods
        Case("json_5000_unknown_fields", "flood", lambda t: _json({f"field{i}": i for i in range(5000)})),
        Case("json_100_fields_named_2kb", "flood", lambda t: _json({f"{i}" + "n" * 2000: 1 for i in range(100)})),
        Case(
            "form_3000_fields",
            "flood",
            lambda t: {"body": "&".join(f"f{i}=1" for i in range(3000)).encode(), "headers": [("Content-Type", FORM)]},
        ),
        Case(
            "multipart_1500_fields",
            "flood",
            lambda t: {
                "body": b"".join(
                    b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n\r\n1\r\n' % i for i in range(1500)
                )
                + b"--b--\r\n",
                "headers": [("Content-Type", "multipart/form-data; boundary=b")],
            },
        ),
        Case("unknown_field_surrogate_name", "flood", lambda t: _json(b'{"\\ud800": 1, "\\udfff\\u0000": 2}')),
        # -- bad encodings
        Case("invalid_utf8", "encoding", lambda t: _json(b'{"username": "\xff\xfe\xfa", "tier": "\xc3"}')),
        Case("overlong_utf8_quote", "encoding", lambda t: _json(b'{"username": "a\xc0\xa2}')),
        Case("utf16_without_charset", "encoding", lambda t: _json(json.dumps(t.fields).encode("utf-16"))),
        Case(
            "utf16_with_charset",
            "encoding",
            lambda t: _json(json.dumps(t.fields).encode("utf-16"), f"{JSON}; charset=utf-16"),
        ),
        Case("charset_rot13", "encoding", lambda t: _json(t.fields, f"{JSON}; charset=rot13")),
        Case("charset_base64", "encoding", lambda t: _json(t.fields, f"{JSON}; charset=base64")),
        Case("charset_unknown", "encoding", lambda t: _json(t.fields, f"{JSON}; charset=klingon-8")),
        Case(
            "form_charset_rot13",
            "encoding",
            lambda t: {"body": b"username=a&password=b", "headers": [("Content-Type", f"{FORM}; charset=rot13")]},
        ),
        Case(
            "form_invalid_percent_utf8",
            "encoding",
            lambda t: {"body": b"username=%ff%fe&password=%c0%af", "headers": [("Content-Type", FORM)]},
        ),
        Case("lone_surrogates_in_values", "encoding", lambda t: _json(b'{"username": "\\ud800", "tier": "\\udc00"}')),
        Case("byte_order_mark", "encoding", lambda t: _json(b"\xef\xbb\xbf" + json.dumps(t.fields).encode())),
        # -- NULs
        Case("nul_escaped_in_every_value", "nul", lambda t: _json({k: "a\u0000b" for k in t.fields})),
        Case("nul_raw_byte_in_body", "nul", lambda t: _json(b'{"username": "a\x00b"}')),
        Case("nul_in_a_key", "nul", lambda t: _json({"\u0000": 1, **t.fields})),
        Case(
            "nul_in_form_values",
            "nul",
            lambda t: {"body": b"username=a%00b&password=%00&tier=%00", "headers": [("Content-Type", FORM)]},
        ),
        # -- weird numbers
        Case(
            "number_1e999", "number", lambda t: _json(json.dumps(_with(t, seats="@")).replace('"@"', "1e999").encode())
        ),
        Case(
            "number_minus_1e999",
            "number",
            lambda t: _json(json.dumps(_with(t, departure_id="@")).replace('"@"', "-1e999").encode()),
        ),
        Case("number_nan", "number", lambda t: _json(json.dumps(_with(t, seats="@")).replace('"@"', "NaN").encode())),
        Case(
            "number_infinity",
            "number",
            lambda t: _json(json.dumps(_with(t, seats="@")).replace('"@"', "Infinity").encode()),
        ),
        Case("int_4000_digits", "number", lambda t: _json(_with(t, seats=10**3999, departure_id=10**3999))),
        Case(
            "int_5000_digits",
            "number",
            lambda t: _json(json.dumps(_with(t, seats="@")).replace('"@"', "9" * 5000).encode()),
        ),
        Case("float_1e308_and_tiny", "number", lambda t: _json(_with(t, seats=1e308, departure_id=5e-324))),
        Case("negative_zero_and_fraction", "number", lambda t: _json(_with(t, seats=-0.0, departure_id=1.0000001))),
        # -- wrong types
        Case("body_is_a_list", "type", lambda t: _json([t.fields])),
        Case("body_is_a_string", "type", lambda t: _json("book me")),
        Case("body_is_null", "type", lambda t: _json(None)),
        Case("body_is_a_number", "type", lambda t: _json(12)),
        Case("every_field_an_object", "type", lambda t: _json({k: {"$gt": ""} for k in t.fields})),
        Case("every_field_a_list", "type", lambda t: _json({k: [v, v] for k, v in t.fields.items()})),
        Case("every_field_a_bool", "type", lambda t: _json(dict.fromkeys(t.fields, True))),
        # -- duplicate keys
        Case(
            "duplicate_keys",
            "duplicate",
            lambda t: _json(b'{"seats": 1, "seats": 9, "username": "a", "username": "b"}'),
        ),
        Case(
            "duplicate_form_fields",
            "duplicate",
            lambda t: {"body": b"username=a&username=b&seats=1&seats=9", "headers": [("Content-Type", FORM)]},
        ),
        # -- empty bodies
        Case("empty_json", "empty", lambda t: _json(b"")),
        Case("empty_without_content_type", "empty", lambda t: {"body": b""}),
        Case("whitespace_only_json", "empty", lambda t: _json(b" \r\n\t ")),
        Case("empty_object", "empty", lambda t: _json({})),
        # -- wrong content types
        Case("text_plain", "content_type", lambda t: _json(t.fields, "text/plain")),
        Case(
            "xml",
            "content_type",
            lambda t: _json(b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>", "application/xml"),
        ),
        Case("no_content_type_with_body", "content_type", lambda t: {"body": json.dumps(t.fields).encode()}),
        Case("json_declared_form_sent", "content_type", lambda t: _json(b"username=a&password=b")),
        Case("form_declared_json_sent", "content_type", lambda t: _json(t.fields, FORM)),
        Case("multipart_without_boundary", "content_type", lambda t: _json(b"--x\r\n\r\n", "multipart/form-data")),
        Case(
            "multipart_broken",
            "content_type",
            lambda t: _json(b"--b\r\nContent-Disposition: form-data\r\n", "multipart/form-data; boundary=b"),
        ),
        Case("content_type_garbage", "content_type", lambda t: _json(t.fields, ";;;=;/;charset")),
        Case("content_type_4kb", "content_type", lambda t: _json(t.fields, JSON + "; x=" + "y" * 4000)),
        # -- header abuse
        Case("host_evil", "header", lambda t: _json(t.fields, host="evil.example")),
        Case(
            "authorization_8kb",
            "header",
            lambda t: _json(t.fields, headers=[("Content-Type", JSON), ("Authorization", "Token " + "a" * 8000)]),
        ),
        Case(
            "authorization_odd_schemes",
            "header",
            lambda t: _json(t.fields, headers=[("Content-Type", JSON), ("Authorization", "Basic !!!not-base64")]),
        ),
        Case(
            "correlation_id_8kb",
            "header",
            lambda t: _json(t.fields, headers=[("Content-Type", JSON), ("X-Correlation-ID", "c" * 8000)]),
        ),
        Case(
            "idempotency_key_8kb",
            "header",
            lambda t: _json(t.fields, headers=[("Content-Type", JSON), ("Idempotency-Key", "k" * 8000)]),
        ),
        Case(
            "ninety_extra_headers",
            "header",
            lambda t: _json(t.fields, headers=[("Content-Type", JSON), *[(f"X-F{i}", "v" * 80) for i in range(90)]]),
        ),
        Case(
            "accept_xml_only",
            "header",
            lambda t: _json(t.fields, headers=[("Content-Type", JSON), ("Accept", "application/xml")]),
        ),
        Case(
            "accept_language_garbage",
            "header",
            lambda t: _json(t.fields, headers=[("Content-Type", JSON), ("Accept-Language", "zz-ZZ;q=abc, " * 200)]),
        ),
        Case(
            "cookie_garbage_session",
            "header",
            lambda t: _json(
                t.fields,
                headers=[("Content-Type", JSON), ("Cookie", "sessionid=" + "s" * 3000 + '; csrftoken="\\777"')],
            ),
        ),
        Case(
            "forwarded_for_garbage",
            "header",
            lambda t: _json(
                t.fields, headers=[("Content-Type", JSON), ("X-Forwarded-For", "not-an-ip, ::zz, 999.1.1.1")]
            ),
        ),
        Case(
            "expect_100_continue",
            "header",
            lambda t: _json(t.fields, headers=[("Content-Type", JSON), ("Expect", "100-continue")]),
        ),
        Case(
            "content_length_not_a_number",
            "header",
            lambda t: {"raw_head": _head(t, "Content-Length: abc")},
            server_level=True,
        ),
        Case(
            "content_length_negative",
            "header",
            lambda t: {"raw_head": _head(t, "Content-Length: -5")},
            server_level=True,
        ),
        Case(
            "header_with_nul",
            "header",
            lambda t: {"raw_head": _head(t, "X-A: a\x00b", "Content-Length: 0")},
            server_level=True,
        ),
    ]
    for field in STRING_FIELDS:
        for length in (256, 5000, 100_000):
            cases.append(
                Case(
                    f"long_{field}_{length}",
                    "long_string",
                    lambda t, field=field, length=length: _json(_with(t, **{field: _long_value(field, length)})),
                )
            )
    return cases


def _long_value(field: str, length: int) -> str:
    if "email" in field:
        return "a" * (length - len("@example.com")) + "@example.com"
    if "phone" in field:
        return "+" + "1" * (length - 1)
    return "x" * length


def _head(target: Target, *lines: str) -> bytes:
    head = [f"{target.method} {target.path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", *lines]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")


CASES = _cases()


@pytest.fixture(scope="module")
def server(django_db_setup, django_db_blocker) -> Iterator[tuple[Gunicorn, dict[str, Any]]]:  # type: ignore[no-untyped-def]
    """gunicorn with DEBUG unset (its default) and limits high enough that throttles do not hide answers."""
    from django.db.models import F
    from rest_framework.authtoken.models import Token

    from availability.models import Departure
    from availability.tests.factories import DepartureFactory
    from bookings.tests.factories import BookingFactory, UserFactory

    with django_db_blocker.unblock():
        user = UserFactory(username=f"hostile-{uuid.uuid4().hex[:8]}")
        departure = DepartureFactory(capacity=10_000)
        booking = BookingFactory(user=user, departure=departure)
        # The factory writes the row only: hold its seat too, so that cancelling it releases one.
        Departure.objects.filter(pk=departure.pk).update(seats_reserved=F("seats_reserved") + booking.seats)
        context = {"token": Token.objects.create(user=user).key, "departure": departure.pk, "booking": booking.pk}
    limits = {
        "REDIS_KEY_PREFIX": f"hostile.{uuid.uuid4().hex[:8]}",
        "BOOKING_THROTTLE_RATE": "100000/min",
        "AUTH_TOKEN_THROTTLE_RATE": "100000/min",
        "AUTH_TOKEN_THROTTLE_RATE_PER_USERNAME": "100000/min",
        "AUTH_REGISTER_THROTTLE_RATE": "100000/min",
        "AUTH_REGISTER_THROTTLE_RATE_PER_USERNAME": "100000/min",
        "AUTH_LOCKOUT_FAILURES": "100000",
    }
    with Gunicorn(extra_env=limits) as gunicorn:
        yield gunicorn, context
    with django_db_blocker.unblock():
        booking.delete()
        user.delete()


def _targets(port: int, context: dict[str, Any]) -> list[Target]:
    """Every write operation the live schema documents, plus the admin login form."""
    schema = json.loads(raw_request(port, "GET", "/api/schema/?format=json", headers=[("Accept", JSON)]).body)
    plausible = {
        "username": "someone",
        "email": "someone@example.com",
        "password": "a-long-enough-password",
        "departure_id": context["departure"],
        "seats": 1,
        "tier": "standard",
        "contact_email": "someone@example.com",
        "contact_phone": "+33600000000",
    }
    targets = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method not in ("post", "put", "patch", "delete"):
                continue
            properties: dict[str, Any] = {}
            for content in operation.get("requestBody", {}).get("content", {}).values():
                ref = content["schema"].get("$ref", "")
                properties |= schema["components"]["schemas"].get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
            fields = {name: plausible.get(name, "x") for name in properties}
            concrete = path.replace("{booking_id}", str(context["booking"]))
            targets.append(Target(method.upper(), concrete, fields))
    targets.append(Target("POST", "/admin/login/", {"username": "someone", "password": "x"}, api=False))
    return targets


def _problems(case: Case, target: Target, who: str, response: RawResponse) -> list[str]:
    where = f"{case.name} {target.method} {target.path} ({who})"
    problems = []
    if response.status == 0 or response.status >= 500:
        problems.append(f"{where}: {response.status or 'no answer'} {response.body[:300]!r}")
        return problems
    if case.server_level and response.status >= 400 and response.header("X-Correlation-ID") is None:
        return problems  # gunicorn refused the request head itself: the app never saw it
    if response.status >= 400:
        if len(response.body) > MAX_ERROR_BODY:
            problems.append(f"{where}: {response.status} error body of {len(response.body)} bytes")
        if target.api:
            try:
                error = json.loads(response.body)["error"]
                assert isinstance(error["code"], str) and isinstance(error["message"], str)
                assert set(error) <= {"code", "message", "fields"}
            except (ValueError, KeyError, TypeError, AssertionError):
                problems.append(f"{where}: {response.status} not the error shape: {response.body[:200]!r}")
    leaked = [marker.decode() for marker in LEAKS if marker in response.body]
    if leaked:
        problems.append(f"{where}: response shows {leaked}")
    return problems


def test_the_hostile_corpus_gets_no_5xx_and_only_small_json_errors_on_every_write_endpoint(server) -> None:
    # given a live gunicorn, every write endpoint, and the hostile cases
    gunicorn, context = server
    targets = _targets(gunicorn.port, context)
    assert {"/api/auth/register/", "/api/auth/token/", "/api/bookings/"} <= {t.path for t in targets}
    assert len(CASES) >= 50
    statuses: Counter[int] = Counter()
    problems: list[str] = []
    largest_error = 0

    # when each case goes to each endpoint, anonymous and with a token
    for case in CASES:
        for target in targets:
            for who in ("anonymous", "token"):
                request = case.build(target)
                headers = list(request.pop("headers", []))
                # (a hand-made raw head carries no token: then both send the same bytes)
                if who == "token" and not any(name == "Authorization" for name, _ in headers):
                    headers.append(("Authorization", f"Token {context['token']}"))
                response = raw_request(gunicorn.port, target.method, target.path, headers=headers, **request)
                statuses[response.status] += 1
                if response.status >= 400:
                    largest_error = max(largest_error, len(response.body))
                problems += _problems(case, target, who, response)

    # then
    requests = sum(statuses.values())
    server_errors = sum(n for status, n in statuses.items() if status >= 500 or status == 0)
    print(
        json.dumps(
            {
                "hostile_cases": len(CASES),
                "endpoints": len(targets),
                "requests": requests,
                "5xx": server_errors,
                "problems": len(problems),
                "largest_error_body": largest_error,
                "statuses": dict(sorted(statuses.items())),
            }
        )
    )
    assert not problems, "\n".join(problems[:60]) + (f"\n... {len(problems) - 60} more" if len(problems) > 60 else "")
