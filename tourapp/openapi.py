"""OpenAPI post-processing: document the one error shape on every operation.

Every API error goes through ``tourapp.exceptions.api_exception_handler`` and has the shape
``{"error": {"code", "message", "fields"?}}``; this hook declares it once as the ``Error``
component and lists the statuses any operation can answer with, so clients (and schemathesis)
see every response the API really gives.
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "example": "seats_unavailable"},
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "description": "Per-field messages for invalid input.",
                    "additionalProperties": True,
                },
            },
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


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault("Error", ERROR_SCHEMA)
    ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for path_item in result.get("paths", {}).values():
        for method, operation in path_item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            common = {**_COMMON, **_WITH_BODY} if "requestBody" in operation else _COMMON
            for code, description in common.items():
                responses.setdefault(code, {"description": description, "content": ref})
    return result
