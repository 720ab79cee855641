"""Domain error base and the one API exception handler.

Every API error has the same JSON shape::

    {"error": {"code": "seats_unavailable", "message": "...", "fields": {"seats": ["..."]}}}

Domain errors raised by services (subclasses of ``DomainError``) map to their HTTP status.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


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


def _error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """The API's one error shape: ``{"error": {"code", "message", "fields"?}}``."""
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
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


def not_found_handler(request: HttpRequest, exception: Exception) -> HttpResponse:
    """404 for URLs no view matched: the API's JSON error shape under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return error_json_response("not_found", "Not found.", status.HTTP_404_NOT_FOUND)
    return page_not_found(request, exception)
