"""DRF request parsers that no client input can crash.

DRF's own parsers read ``request.stream`` whole (Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE`` only
guards ``request.body``), trust the ``charset`` parameter (``charset=rot13`` names a codec that
is not a text encoding: a ``TypeError``, a 500), and hand JSON to ``json.load``, whose recursion
on ~1,000 nested arrays is a ``RecursionError`` (a 500). These parsers guarantee:

- at most ``REQUEST_MAX_BODY_BYTES`` are read; more is a 413 (``RequestBodyLimitMiddleware`` has
  usually refused it from ``Content-Length`` already; this covers every other way in);
- JSON is UTF-8 (RFC 8259 §8.1): another charset is a 415, undecodable bytes a 400;
- JSON nests at most ``JSON_MAX_DEPTH`` levels, has no duplicate keys (two parsers could read
  ``{"seats": 1, "seats": 9}`` differently), no non-finite number (``NaN``, ``1e999``) and no
  lone surrogate: 400;
- forms declare a text charset we know, and too many fields is a 400.
"""

from __future__ import annotations

import json
import math
import re
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import QueryDict
from django.utils.http import parse_header_parameters
from rest_framework import parsers, status
from rest_framework.exceptions import APIException, ParseError, UnsupportedMediaType

# No request of this API nests more than 3 levels; 32 leaves room and stays far from the recursion limit.
JSON_MAX_DEPTH = 32
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_JSON_CHARSETS = frozenset({"utf-8", "utf8"})
_FORM_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1"})


class RequestBodyTooLarge(APIException):
    # Here, not in tourapp.exceptions: that module imports DRF's views, which import these parsers.
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "request_too_large"


def body_read_bounded(stream: IO[bytes]) -> bytes:
    """The whole body, or a 413 once it passes ``REQUEST_MAX_BODY_BYTES`` (never reads more than one byte past)."""
    limit = settings.REQUEST_MAX_BODY_BYTES
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise RequestBodyTooLarge()
    return data


def _charset_check(media_type: str | None, allowed: frozenset[str], what: str) -> None:
    charset = parse_header_parameters(media_type or "")[1].get("charset")
    if charset is not None and charset.strip().lower() not in allowed:
        raise UnsupportedMediaType(media_type or "", detail=f"Unsupported charset for {what}; send UTF-8.")


def _object_without_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key[:50]!r}")
            seen.add(key)
    return data


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"number out of range: {text[:50]}")
    return number


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _structure_check(data: Any) -> None:
    """Depth, and no lone surrogate (``"\\ud800"`` parses, but no UTF-8 encoder, PostgreSQL's or our
    renderer's, accepts it back: echoed in an error it was a 500). Iterative: it cannot recurse itself."""
    pending: list[tuple[Any, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if _SURROGATE.search(value):
                raise ParseError("JSON parse error - a string holds a lone surrogate (\\ud800-\\udfff).")
        elif isinstance(value, dict | list):
            if depth > JSON_MAX_DEPTH:
                raise ParseError(f"JSON parse error - nested deeper than {JSON_MAX_DEPTH} levels.")
            if isinstance(value, dict):
                pending.extend((key, depth) for key in value)
                pending.extend((child, depth + 1) for child in value.values())
            else:
                pending.extend((child, depth + 1) for child in value)


class JSONParser(parsers.JSONParser):
    def parse(self, stream: IO[Any], media_type: str | None = None, parser_context: Any = None) -> Any:
        _charset_check(media_type, _JSON_CHARSETS, "JSON")
        raw = body_read_bounded(stream)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ParseError(f"JSON parse error - the body is not valid UTF-8 (byte {exc.start}).") from None
        try:
            data = json.loads(
                text.removeprefix("\ufeff"),  # RFC 8259 lets a parser ignore a byte order mark
                object_pairs_hook=_object_without_duplicate_keys,
                parse_float=_finite_float,
                parse_constant=_reject_constant,
            )
        except RecursionError:
            raise ParseError(f"JSON parse error - nested deeper than {JSON_MAX_DEPTH} levels.") from None
        except ValueError as exc:  # also int() past Python's digit limit
            raise ParseError(f"JSON parse error - {exc}") from None
        _structure_check(data)
        return data


class FormParser(parsers.FormParser):
    def parse(self, stream: IO[Any], media_type: str | None = None, parser_context: Any = None) -> Any:
        _charset_check(media_type, _FORM_CHARSETS, "forms")
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        raw = body_read_bounded(stream)
        try:
            return QueryDict(raw, encoding=encoding)
        except TooManyFieldsSent:
            raise ParseError("Form parse error - too many fields.") from None


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream: IO[Any], media_type: str | None = None, parser_context: Any = None) -> Any:
        _charset_check(media_type, _FORM_CHARSETS, "forms")
        try:
            return super().parse(stream, media_type, parser_context)
        except RequestDataTooBig:
            raise RequestBodyTooLarge() from None
        except (TooManyFieldsSent, TooManyFilesSent):
            raise ParseError("Multipart form parse error - too many fields.") from None
        except (UnicodeDecodeError, LookupError):
            raise ParseError("Multipart form parse error - undecodable part.") from None
