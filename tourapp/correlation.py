"""Correlation id: one token that follows a booking through HTTP, outbox, brokers, tasks and logs.

The id lives in a ``ContextVar`` so every log line of the current request, task or message
carries it (see ``tourapp.logging.ContextFilter``). A client-supplied ``X-Correlation-ID`` is
kept only when it is a sane token; anything else is replaced by a fresh UUID.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.http import HttpRequest, HttpResponse
from uuid6 import uuid7

HEADER = "X-Correlation-ID"
_META_KEY = "HTTP_X_CORRELATION_ID"
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

_current: ContextVar[str | None] = ContextVar("correlation_id", default=None)
# Extra context for log lines (event id, booking id) set by consumers and tasks.
_log_context: ContextVar[dict[str, str]] = ContextVar("log_context", default={})  # noqa: B039 - never mutated


def new_correlation_id() -> str:
    # Time-ordered (UUIDv7) like event ids: the outbox's correlation index takes appends, not random inserts.
    return uuid7().hex


def sanitize(value: str | None) -> str | None:
    """Return ``value`` if it is a sane token (letters, digits, ``._:-``, max 128), else None."""
    if value and _SANE.fullmatch(value):  # fullmatch: "$" would let a trailing newline in
        return value
    return None


def get_correlation_id() -> str | None:
    return _current.get()


def get_log_context() -> dict[str, str]:
    return _log_context.get()


@contextmanager
def correlation_scope(correlation_id: str | None, **log_context: object) -> Iterator[str]:
    """Run a block under ``correlation_id`` (a fresh one when missing or insane)."""
    cid = sanitize(correlation_id) or new_correlation_id()
    token = _current.set(cid)
    ctx_token = _log_context.set({k: str(v) for k, v in log_context.items() if v is not None})
    try:
        yield cid
    finally:
        _log_context.reset(ctx_token)
        _current.reset(token)


class CorrelationIdMiddleware:
    """Takes ``X-Correlation-ID`` from the request (or makes one) and returns it on the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with correlation_scope(request.META.get(_META_KEY)) as cid:
            request.correlation_id = cid  # type: ignore[attr-defined]  # documented request attribute
            response = self.get_response(request)
            response[HEADER] = cid
            return response
