"""Request hygiene that no view should have to repeat.

- NUL bytes: PostgreSQL text cannot hold one, so a NUL in a token, a session cookie (raw, or
  from a quoted value's ``\000`` escape) or a query parameter that reaches a query raises
  ``DataError`` (a 500) deep inside Django or DRF. No legitimate client sends one: such a request
  is refused at the door with a 400 in the API's error shape. (NULs inside a JSON or form body are
  rejected per field by DRF and Django forms.)
- Host: a Host outside ``ALLOWED_HOSTS`` is a short 400 here, before anything else looks at it
  (Django's own answer is a full debug page when DEBUG is on).
- Body size: a body over ``REQUEST_MAX_BODY_BYTES`` is a 413 before anything reads it, whether
  announced by ``Content-Length`` or sent chunked (read up to the cap, then refused).
- Trailing slash: a write to an ``/api/`` URL without its slash is a JSON 404 naming the right
  URL. Django would redirect (a 301 that drops the body, or a ``RuntimeError`` with DEBUG on);
  a redirected write would send the body and credentials twice and hide the client's bug.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import LimitedStream
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.middleware import common

from tourapp.exceptions import error_json_response, front_door_error
from tourapp.parsers import RequestBodyTooLarge

security_logger = logging.getLogger("django.security.DisallowedHost")


def _has_nul(request: HttpRequest) -> bool:
    if "\x00" in request.path_info or b"\x00" in unquote_to_bytes(request.META.get("QUERY_STRING", "")):
        return True
    if any(key.startswith("HTTP_") and "\x00" in value for key, value in request.META.items()):
        return True
    # Cookies as Django parses them: a quoted value's octal escape ("\000") becomes a NUL only then.
    return any("\x00" in name or "\x00" in value for name, value in request.COOKIES.items())


class RejectNulBytesMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _has_nul(request):
            return error_json_response("invalid_request", "NUL bytes are not allowed in the URL or headers.", 400)
        return self.get_response(request)


class RejectDisallowedHostMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            request.get_host()
        except DisallowedHost:
            security_logger.warning("request refused: Host header not in ALLOWED_HOSTS")
            return front_door_error(request, "invalid_host", "The Host header is not allowed.", 400)
        return self.get_response(request)


def _body_too_large(request: HttpRequest) -> HttpResponse:
    return front_door_error(request, "request_too_large", str(RequestBodyTooLarge.default_detail), 413)


class RequestBodyLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.REQUEST_MAX_BODY_BYTES
        declared = request.META.get("CONTENT_LENGTH")
        if declared:
            try:
                length = int(declared)
            except ValueError:
                return front_door_error(request, "invalid_request", "The Content-Length header is invalid.", 400)
            if length > limit:
                return _body_too_large(request)
        elif "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            if not request.META.get("wsgi.input_terminated"):
                # The server hands us the raw socket (Django's development server): reading would
                # wait for a close that never comes, and Django would ignore the body anyway.
                return front_door_error(request, "length_required", "Send a Content-Length header.", 411)
            body = request.META["wsgi.input"].read(limit + 1)
            if len(body) > limit:
                return _body_too_large(request)
            # Django reads only Content-Length bytes and so ignores a chunked body: hand it the body
            # we read, delimited, as if it had been announced.
            request.META["CONTENT_LENGTH"] = str(len(body))
            request._stream = LimitedStream(io.BytesIO(body), len(body))  # type: ignore[assignment]  # WSGIRequest's body stream is a LimitedStream
        return self.get_response(request)


class CommonMiddleware(common.CommonMiddleware):
    """Django's, except that a write to an ``/api/`` URL without its trailing slash is a JSON 404."""

    def process_response(self, request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
        if (
            response.status_code == 404
            and request.method not in ("GET", "HEAD")
            and request.path_info.startswith("/api/")
            and self.should_redirect_with_slash(request)
        ):
            url = f"{request.path[:200]}/"
            return error_json_response(
                "not_found", f"Not found. API URLs end with a slash: {request.method} {url}", 404
            )
        return super().process_response(request, response)
