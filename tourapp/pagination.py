"""The API's one pagination: ``?page=`` and ``?page_size=``, with a cap.

``page_size`` above ``API_MAX_PAGE_SIZE`` is served at the cap (a client asking for "everything"
gets the largest page, as DRF does); ``0``, a negative number or a non-integer is a 400 naming
``page_size``, where DRF would silently fall back to the default size.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.settings import api_settings


class PageNumberWithSizePagination(PageNumberPagination):
    page_size_query_param = "page_size"

    @property
    def max_page_size(self) -> int:  # type: ignore[override]  # read per request: settings may change in tests
        return int(settings.API_MAX_PAGE_SIZE)

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return int(api_settings.PAGE_SIZE or 0)
        digits = raw.lstrip("0")
        if not (raw.isascii() and raw.isdecimal()) or not digits:
            raise ValidationError({self.page_size_query_param: [f"A whole number from 1 to {self.max_page_size}."]})
        # Compared as text first: int() of thousands of digits is refused (and slow) in Python.
        return self.max_page_size if len(digits) > 9 else min(int(digits), self.max_page_size)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_query_param:
                parameter["description"] = "Page number, from 1 (a page past the last one is a 404)."
                parameter["schema"] = {"type": "integer", "minimum": 1}
            elif parameter["name"] == self.page_size_query_param:
                parameter["description"] = (
                    f"Results per page (default {api_settings.PAGE_SIZE}). Larger than "
                    f"{self.max_page_size} (API_MAX_PAGE_SIZE) is served at {self.max_page_size}; "
                    "0, negative or not a number is a 400."
                )
                parameter["schema"] = {"type": "integer", "minimum": 1}
        return parameters

    def get_paginated_response_schema(self, schema: Any) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["count", "results"],
            "properties": {
                "count": {"type": "integer", "example": 1, "description": "Results on all pages together."},
                "next": {
                    "type": "string",
                    "nullable": True,
                    "format": "uri",
                    "example": None,
                    "description": "URL of the next page; null on the last page.",
                },
                "previous": {
                    "type": "string",
                    "nullable": True,
                    "format": "uri",
                    "example": None,
                    "description": "URL of the previous page; null on the first page.",
                },
                # drf-spectacular passes a placeholder object here to build paginated examples.
                "results": {**schema, "description": "This page's results."} if isinstance(schema, dict) else schema,
            },
        }
