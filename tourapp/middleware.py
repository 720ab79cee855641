"""Request hygiene that no view should have to repeat.

PostgreSQL text cannot hold a NUL byte, so a NUL in a token, a session cookie (raw, or from a
quoted value's ``\000`` escape) or a query parameter that reaches a query raises ``DataError``
(a 500) deep inside Django or DRF. No legitimate client sends one: such a request is refused at
the door with a 400 in the API's error shape. (NULs inside a JSON or form body are rejected per
field by DRF and Django forms.)
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import unquote_to_bytes

from django.http import HttpRequest, HttpResponse

from tourapp.exceptions import error_json_response


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
