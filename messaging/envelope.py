"""Parse and validate one incoming message (RabbitMQ or Kafka) into an :class:`Event`.

The guarantee: either a well-typed ``Event`` comes out, or :class:`InvalidMessage` is raised with a
reason fit for a dead-letter record. Nothing here touches the database or a broker.

The envelope knows only what every event carries: its id, type, correlation id, occurred-at, the
transport headers and the body. What the body means belongs to the event type's schema, registered
by the domain app that owns it (:mod:`messaging.schemas`): it gives the typed ``payload``, the
aggregate key and, for a message without ``eventId``, the dedup key.

Producers that are not ours are accepted (the lesson's Node.js service): without ``eventId`` the
schema derives the dedup key; the event type may come only from a header or the routing key
(``<event type>.<qualifier>``); the correlation id may come only from a ``correlationId`` header.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from django.conf import settings

from messaging import schemas
from messaging.events import HEADER_CORRELATION_ID, HEADER_EVENT_ID, HEADER_EVENT_TYPE

P = TypeVar("P")


class InvalidMessage(Exception):
    """The message can never be handled (bad JSON, unknown type, missing/mistyped field, too big)."""

    def __init__(self, reason: str, *, event_type: str = "", event_id: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_type = event_type
        self.event_id = event_id


@dataclass(frozen=True)
class Event(Generic[P]):
    event_type: str
    dedup_key: str
    # The schema's aggregate key: which events must stay in order (the Kafka key), and the log context.
    aggregate_key: str
    # The body as the event type's schema typed it (what handlers read).
    payload: P
    event_id: uuid.UUID | None = None
    correlation_id: str = ""
    occurred_at: str = ""
    headers: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    body: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def missing(self, required: tuple[str, ...]) -> list[str]:
        """Names (payload attribute names) among ``required`` that this event does not carry."""
        return [name for name in required if getattr(self.payload, name) in (None, "")]


def body_int(body: Mapping[str, Any], key: str, *, minimum: int | None = None) -> int | None:
    """``body[key]`` as an integer (a string of digits is accepted), ``None`` when absent."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidMessage(f"field {key} must be an integer, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise InvalidMessage(f"field {key} must be >= {minimum}, got {value}")
    return value


def body_str(body: Mapping[str, Any], key: str) -> str:
    """``body[key]`` as a string, ``""`` when absent."""
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidMessage(f"field {key} must be a string, got {type(value).__name__}")
    return value


def _header(headers: Mapping[str, Any], name: str) -> str:
    value = headers.get(name)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


def _decode(body: bytes | str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(body, dict):
        return body
    raw = body.encode() if isinstance(body, str) else body
    limit = settings.EVENTS_MAX_BODY_BYTES
    if len(raw) > limit:
        raise InvalidMessage(f"body too large: {len(raw)} bytes > {limit}")
    try:
        decoded = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidMessage(f"malformed JSON: {exc}") from exc
    if not isinstance(decoded, dict):
        raise InvalidMessage(f"body must be a JSON object, got {type(decoded).__name__}")
    return decoded


def _event_type(payload: Mapping[str, Any], headers: Mapping[str, Any], routing_key: str) -> Any:
    event_type = payload.get("eventType") or _header(headers, HEADER_EVENT_TYPE)
    if not event_type and routing_key:
        # Named by the routing key alone: the registered type it starts with, else (to name the
        # unknown type in the reason) the key without its qualifier.
        event_type = schemas.event_type_for_routing_key(routing_key) or routing_key.rpartition(".")[0]
    return event_type


def event_parse(
    *,
    body: bytes | str | dict[str, Any],
    headers: Mapping[str, Any] | None = None,
    routing_key: str = "",
    message_id: str = "",
    correlation_id: str = "",
) -> Event[Any]:
    """Validate one message; raise :class:`InvalidMessage` with the reason when it cannot be handled."""
    headers = headers or {}
    payload = _decode(body)
    event_type = _event_type(payload, headers, routing_key)
    schema = schemas.schema_get(event_type) if isinstance(event_type, str) else None
    if schema is None:
        raise InvalidMessage(f"unknown event type {event_type!r}", event_type=str(event_type or "")[:64])

    raw_event_id = payload.get("eventId") or _header(headers, HEADER_EVENT_ID) or message_id or ""
    event_id: uuid.UUID | None = None
    if raw_event_id:
        try:
            event_id = uuid.UUID(str(raw_event_id))
        except ValueError as exc:
            raise InvalidMessage(f"eventId is not a UUID: {raw_event_id!r}", event_type=event_type) from exc

    try:
        typed = schema.parse(payload)
        cid = _header(headers, HEADER_CORRELATION_ID) or correlation_id or body_str(payload, "correlationId")
        return Event(
            event_type=event_type,
            event_id=event_id,
            dedup_key=str(event_id) if event_id else schema.dedup_key(event_type=event_type, payload=typed),
            aggregate_key=schema.aggregate_key(typed),
            payload=typed,
            correlation_id=cid[:128],
            occurred_at=body_str(payload, "occurredAt"),
            headers=headers,
            body=payload,
        )
    except InvalidMessage as exc:
        raise InvalidMessage(exc.reason, event_type=event_type, event_id=str(event_id or "")) from exc
