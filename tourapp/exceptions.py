"""Domain error base, the one API exception handler and the URL-level error handlers.

Every API error has the same JSON shape::

    {"error": {"code": "seats_unavailable", "message": "...", "fields": {"seats": ["..."]}}}

Domain errors raised by services (subclasses of ``DomainError``) map to their HTTP status. Errors
raised outside DRF (bad Host, too large a body, an unknown URL, a crash) get the same shape under
``/api/`` through ``handler400/403/404/500`` and ``front_door_error``; elsewhere (admin) Django's
short pages. An error body is bounded whatever the client sent: messages, field names and lists
are cut (``_bounded``), so an error never echoes a large input back.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.db import IntegrityError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from tourapp.parsers import RequestBodyTooLarge


class DomainError(Exception):
    """A business rule said no. Services raise these; the API turns them into 4xx."""

    code = "domain_error"
    http_status: int = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, *, fields: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class NotFound(DomainError):
    code = "not_found"
    http_status = status.HTTP_404_NOT_FOUND


class Conflict(DomainError):
    code = "conflict"
    http_status = status.HTTP_409_CONFLICT


def integrity_constraint_name(exc: IntegrityError) -> str | None:
    """The name of the database constraint behind ``exc`` (PostgreSQL), so services can map it to a domain error."""
    return getattr(getattr(exc.__cause__, "diag", None), "constraint_name", None)


# Bounds of an error body: a serializer may quote the input (an unknown field's name, a choice it
# refused); these keep any error well under 16 KB whatever the request carried.
_MAX_TEXT = 300
_MAX_KEY = 100
_MAX_KEYS = 30
_MAX_ITEMS = 10
_MAX_DEPTH = 4


def _cut(text: str, limit: int) -> str:
    # Only a text that is too long is replaced: an ErrorDetail keeps its ``code`` otherwise.
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


def _bounded(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return _cut(value, _MAX_TEXT)
    if depth >= _MAX_DEPTH and isinstance(value, dict | list | tuple):
        return "… (nested too deep to show)"
    if isinstance(value, dict):
        items = list(value.items())
        bounded = {_cut(str(key), _MAX_KEY): _bounded(item, depth + 1) for key, item in items[:_MAX_KEYS]}
        if len(items) > _MAX_KEYS:
            bounded["(more)"] = [f"{len(items) - _MAX_KEYS} more fields not shown."]
        return bounded
    if isinstance(value, list | tuple):
        shown = [_bounded(item, depth + 1) for item in value[:_MAX_ITEMS]]
        if len(value) > _MAX_ITEMS:
            shown.append(f"{len(value) - _MAX_ITEMS} more not shown.")
        return shown
    return value


def _error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """The API's one error shape: ``{"error": {"code", "message", "fields"?}}``, bounded in size."""
    body: dict[str, Any] = {"code": code, "message": _cut(message, _MAX_TEXT)}
    if fields:
        body["fields"] = _bounded(fields)
    return {"error": body}


def _error(code: str, message: str, fields: dict[str, Any] | None, http_status: int, headers=None) -> Response:
    return Response(_error_body(code, message, fields), status=http_status, headers=headers)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        return _error(exc.code, exc.message, exc.fields, exc.http_status)
    if isinstance(exc, OperationalError | InterfaceError):
        # The database went away mid-request (failover, terminated connection): the transaction was
        # rolled back, nothing was half-written, and the client may retry (with its Idempotency-Key).
        return _error(
            "service_unavailable",
            "The database is temporarily unavailable; retry shortly.",
            None,
            status.HTTP_503_SERVICE_UNAVAILABLE,
            {"Retry-After": "1"},
        )
    if isinstance(exc, RequestDataTooBig):
        exc = RequestBodyTooLarge()
    elif isinstance(exc, SuspiciousOperation):
        # Django answers these with a 400, but with DEBUG on as a full debug page: answer here.
        logging.getLogger(f"django.security.{type(exc).__name__}").warning("%s", type(exc).__name__)
        return _error("invalid_request", "The request is malformed.", None, status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        fields = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        return _error("invalid", "The request has invalid fields.", fields, response.status_code)
    headers = {k: v for k, v in response.items() if k in ("WWW-Authenticate", "Retry-After", "Allow")}
    return _error(exc.default_code, str(exc.detail), None, response.status_code, headers)


def error_json_response(code: str, message: str, http_status: int) -> JsonResponse:
    """The API's error shape for answers given outside DRF (middleware, URL-level handlers)."""
    return JsonResponse(_error_body(code, message), status=http_status)


def _is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith("/api/")


def front_door_error(request: HttpRequest, code: str, message: str, http_status: int) -> HttpResponse:
    """An error answered before any view: the API's shape under /api/, a short plain text elsewhere."""
    if _is_api(request):
        return error_json_response(code, message, http_status)
    return HttpResponse(f"{message}\n", status=http_status, content_type="text/plain; charset=utf-8")


def bad_request_handler(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler400``: Django's SuspiciousOperation answers (bad Host, too many fields, a body over the cap)."""
    if isinstance(exception, RequestDataTooBig):
        return front_door_error(
            request, "request_too_large", RequestBodyTooLarge.default_detail, status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
        )
    if _is_api(request):
        return error_json_response("invalid_request", "The request is malformed.", status.HTTP_400_BAD_REQUEST)
    return defaults.bad_request(request, exception)


def permission_denied_handler(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _is_api(request):
        return error_json_response(
            "permission_denied", "You do not have permission to perform this action.", status.HTTP_403_FORBIDDEN
        )
    return defaults.permission_denied(request, exception)


def not_found_handler(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404 for URLs no view matched: the API's JSON error shape under /api/, Django's page elsewhere."""
    if _is_api(request):
        return error_json_response("not_found", "Not found.", status.HTTP_404_NOT_FOUND)
    return defaults.page_not_found(request, exception)


def server_error_handler(request: HttpRequest) -> HttpResponse:
    """``handler500`` (DEBUG off): no detail to the client; the traceback is in the log, by correlation id."""
    if _is_api(request):
        return error_json_response(
            "server_error",
            "Internal server error. It has been logged; quote the X-Correlation-ID header to support.",
            status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    return defaults.server_error(request)
