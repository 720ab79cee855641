"""``/api/``: the browsable API's front page, listing every endpoint that needs no URL parameter.

Found from the URLconf, so an endpoint added (or moved between apps) appears without an edit here.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RoutePattern
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

_PREFIX = "api/"


def _routes(patterns: list[URLPattern | URLResolver], prefix: str = "") -> Iterator[str]:
    for entry in patterns:
        if not isinstance(entry.pattern, RoutePattern) or entry.pattern.converters:
            continue  # a regex or a parameter: not a URL one can follow as is
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _routes(entry.url_patterns, route)
        else:
            yield route


def api_endpoints() -> dict[str, str]:
    """``{"tours": "/api/tours/", ...}`` in URLconf order."""
    endpoints: dict[str, str] = {}
    for route in _routes(get_resolver().url_patterns):
        if route.startswith(_PREFIX) and route != _PREFIX:
            endpoints.setdefault(route.removeprefix(_PREFIX).rstrip("/"), f"/{route}")
    return endpoints


class ApiRootView(APIView):
    """The tourapp API. Follow a link: tours and their departures are public; booking needs a token
    (POST your username and password to /api/auth/token/, or register at /api/auth/register/).
    docs (Swagger UI) and redoc describe every operation, with examples."""

    permission_classes = [AllowAny]

    def get_view_name(self) -> str:
        return "tourapp API"

    @extend_schema(exclude=True)
    def get(self, request: Request) -> Response:
        return Response({name: request.build_absolute_uri(path) for name, path in api_endpoints().items()})
