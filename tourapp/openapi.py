"""OpenAPI post-processing: document the one error shape on every operation.

Every API error goes through ``tourapp.exceptions.api_exception_handler`` and has the shape
``{"error": {"code", "message", "fields"?}}``; this hook declares it once as the ``Error``
component, points every error response a view declared as a bare object at it (keeping the
view's description and examples), and lists the statuses any operation can answer with, so
clients (and schemathesis) see every response the API really gives.

Also ``view_description``: how the browsable API shows a view's (user-facing) docstring.
"""

from __future__ import annotations

from typing import Any

from django.utils.safestring import SafeString
from rest_framework import views
from rest_framework.utils import formatting

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The one shape of every API error.",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "description": "What went wrong.",
            "required": ["code", "message"],
            "properties": {
                "code": {
                    "type": "string",
                    "example": "seats_unavailable",
                    "description": "Stable, machine-readable reason (e.g. invalid, not_found, seats_unavailable).",
                },
                "message": {"type": "string", "description": "Human-readable explanation, in English."},
                "fields": {
                    "type": "object",
                    "description": "Per-field messages for invalid input: each field or parameter name maps "
                    "to a list of messages. Absent when no field is at fault.",
                    "additionalProperties": True,
                },
            },
        }
    },
    "example": {
        "error": {
            "code": "invalid",
            "message": "The request has invalid fields.",
            "fields": {"seats": ["Ensure this value is greater than or equal to 1."]},
        }
    },
}

_COMMON = {
    "400": "Invalid input; `fields` names each problem.",
    "401": "Missing or invalid credentials.",
    "403": "Authenticated but not allowed.",
    "404": "No such resource (or not yours), or a page past the end.",
    "405": "Method not allowed on this resource.",
    "429": "Too many requests; see Retry-After.",
    "503": "A dependency (the database) is temporarily unavailable; retry.",
}
# Operations that take a body can also be refused for the body itself (tourapp/parsers.py).
_WITH_BODY = {
    "413": "The body is larger than the configured cap (REQUEST_MAX_BODY_BYTES).",
    "415": "Not JSON, a form or multipart, or a charset other than UTF-8.",
}
_METHODS = {"get", "post", "put", "patch", "delete", "head", "options", "trace"}


def _is_bare_object(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "object" and "properties" not in schema


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", ERROR_SCHEMA)
    error_ref = {"$ref": "#/components/schemas/Error"}
    ref = {"application/json": {"schema": error_ref}}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for code, response in responses.items():
                content = response.get("content", {}).get("application/json")
                if code >= "400" and content is not None and _is_bare_object(content.get("schema")):
                    content["schema"] = error_ref
                if not response.get("description") and code in _COMMON:
                    response["description"] = _COMMON[code]
            common = {**_COMMON, **_WITH_BODY} if "requestBody" in operation else _COMMON
            for code, description in common.items():
                responses.setdefault(code, {"description": description, "content": ref})
    return result


def view_description(view: Any, html: bool = False) -> str | SafeString:
    """``REST_FRAMEWORK["VIEW_DESCRIPTION_FUNCTION"]``: the view's docstring with its wrapped lines
    joined, so the browsable API shows paragraphs rather than a line break wherever the source
    wrapped (without the markdown package DRF turns every newline into ``<br>``)."""
    description = views.get_view_description(view, html=False)
    text = "\n\n".join(" ".join(paragraph.split()) for paragraph in description.split("\n\n"))
    return formatting.markup_description(text) if html else text
