"""django-axes hooks: how a username is counted, and what a locked-out client is answered.

Failures are counted per username (case-folded, so case variants share one count) and per client
address, in the database (``axes.handlers.database``); see the README and ``docs/runbook.md`` for
the limits and how an operator unlocks.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework.throttling import BaseThrottle

from tourapp.exceptions import error_json_response

LOCKED_OUT_CODE = "locked_out"
LOCKED_OUT_MESSAGE = "Too many failed logins; try again later."


def lockout_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str | None:
    """The username an attempt is counted under (``AXES_USERNAME_CALLABLE``), case-folded."""
    username = (credentials or {}).get("username")
    if not isinstance(username, str):
        username = request.POST.get("username", "") if request.method == "POST" else ""
    return username.casefold()[:150] or None


def lockout_client_address(request: HttpRequest) -> str:
    """The client address an attempt is counted under (``AXES_CLIENT_IP_CALLABLE``): the same as the
    API throttles', i.e. ``REMOTE_ADDR`` unless ``TRUSTED_PROXY_COUNT`` proxies set ``X-Forwarded-For``."""
    return BaseThrottle().get_ident(request)  # type: ignore[arg-type]  # reads only request.META, as HttpRequest has


def lockout_retry_after_seconds() -> int:
    """The cool-off: a lockout ends that long after the last failure (``AXES_COOLOFF_TIME``)."""
    return int(settings.AXES_COOLOFF_TIME.total_seconds())


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """``AXES_LOCKOUT_CALLABLE``: 429 with ``Retry-After``; the API's JSON error shape under /api/."""
    if request.path.startswith("/api/"):
        if original_response is not None and original_response.status_code == 429:
            response = original_response  # the API view already answered in the error shape
        else:
            response = error_json_response(LOCKED_OUT_CODE, LOCKED_OUT_MESSAGE, 429)
    else:
        response = HttpResponse(LOCKED_OUT_MESSAGE, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(lockout_retry_after_seconds())
    return response
