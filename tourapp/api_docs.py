"""Swagger UI and ReDoc pages: HTML whatever the client's ``Accept`` header says.

DRF negotiates the renderer from ``Accept``; these views have only an HTML one, so a client
asking for JSON got a bare ``406 Not Acceptable`` page under ``/api/``. A docs page has one
representation: it is always served (its assets come from drf-spectacular-sidecar, locally).
"""

from __future__ import annotations

from collections.abc import Iterable

from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request


class _OnlyRepresentation(BaseContentNegotiation):
    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser | None:
        return next(iter(parsers), None)

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class SwaggerUiView(SpectacularSwaggerView):
    content_negotiation_class = _OnlyRepresentation


class RedocView(SpectacularRedocView):
    content_negotiation_class = _OnlyRepresentation
