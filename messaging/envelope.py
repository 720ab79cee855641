"""Parse and validate one incoming message (RabbitMQ or Kafka) into an :class:`Event`.

The guarantee: either a well-typed ``Event`` comes out, or :class:`InvalidMessage` is raised with a
reason fit for a dead-letter record. Nothing here touches the database or a broker.

Producers that are not ours are accepted (the lesson's Node.js service): without ``eventId`` the
dedup key is derived from event type + booking id (``tour.booked:42``); ``totalPrice`` may be a
JSON number; the event type may come only from a header or the routing key; the correlation id may
come only from a ``correlationId`` header.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings

from messaging.events import EVENT_TYPES, HEADER_CORRELATION_ID, HEADER_EVENT_ID, HEADER_EVENT_TYPE


class InvalidMessage(Exception):
    """The message can never be handled (bad JSON, unknown type, missing/mistyped field, too big)."""

    def __init__(self, reason: str, *, event_type: str = "", event_id: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_type = event_type
        self.event_id = event_id


@dataclass(frozen=True)
class Event:
    event_type: str
    dedup_key: str
    booking_id: str
    event_id: uuid.UUID | None = None
    correlation_id: str = ""
    tour_id: int | None = None
    departure_id: int | None = None
    user_id: int | None = None
    seats: int | None = None
    tier: str = ""
    status: str = ""
    total_price: Decimal | None = None
    currency: str = ""
    user_email: str = ""
    phone: str = ""
    tour_name: str = ""
    occurred_at: str = ""
    payload: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def missing(self, required: tuple[str, ...]) -> list[str]:
        """Names (attribute names) among ``required`` that this event does not carry."""
        return [name for name in required if getattr(self, name) in (None, "")]


def _header(headers: Mapping[str, Any], name: str) -> str:
    value = headers.get(name)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value if isinstance(value, str) else ""


def _int(payload: dict[str, Any], key: str, *, minimum: int | None = None) -> int | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidMessage(f"field {key} must be an integer, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise InvalidMessage(f"field {key} must be >= {minimum}, got {value}")
    return value


def _str(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidMessage(f"field {key} must be a string, got {type(value).__name__}")
    return value


def _money(payload: dict[str, Any], key: str) -> Decimal | None:
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidMessage(f"field {key} must be a decimal string or a number, got {type(value).__name__}")
    try:
        # str() first: a float goes through its shortest repr (199.99, not 199.989999...).
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise InvalidMessage(f"field {key} is not a decimal: {value!r}") from exc
    if not amount.is_finite() or amount < 0:
        raise InvalidMessage(f"field {key} must be a non-negative finite amount, got {value!r}")
    return amount.quantize(Decimal("0.01"))


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


def event_parse(
    *,
    body: bytes | str | dict[str, Any],
    headers: Mapping[str, Any] | None = None,
    routing_key: str = "",
    message_id: str = "",
    correlation_id: str = "",
) -> Event:
    """Validate one message; raise :class:`InvalidMessage` with the reason when it cannot be handled."""
    headers = headers or {}
    payload = _decode(body)
    event_type = payload.get("eventType") or _header(headers, HEADER_EVENT_TYPE)
    if not event_type and routing_key.count(".") >= 1:
        event_type = ".".join(routing_key.split(".")[:2])
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        raise InvalidMessage(f"unknown event type {event_type!r}", event_type=str(event_type or "")[:64])

    raw_event_id = payload.get("eventId") or _header(headers, HEADER_EVENT_ID) or message_id or ""
    event_id: uuid.UUID | None = None
    if raw_event_id:
        try:
            event_id = uuid.UUID(str(raw_event_id))
        except ValueError as exc:
            raise InvalidMessage(f"eventId is not a UUID: {raw_event_id!r}", event_type=event_type) from exc

    booking_id = payload.get("bookingId")
    if isinstance(booking_id, bool) or not isinstance(booking_id, int | str) or str(booking_id).strip() == "":
        raise InvalidMessage("missing or mistyped field bookingId", event_type=event_type)
    booking_id = str(booking_id).strip()[:64]

    cid = _header(headers, HEADER_CORRELATION_ID) or correlation_id or _str(payload, "correlationId")
    try:
        return Event(
            event_type=event_type,
            event_id=event_id,
            dedup_key=str(event_id) if event_id else f"{event_type}:{booking_id}",
            booking_id=booking_id,
            correlation_id=cid[:128],
            tour_id=_int(payload, "tourId"),
            departure_id=_int(payload, "departureId"),
            user_id=_int(payload, "userId"),
            seats=_int(payload, "seats", minimum=1),
            tier=_str(payload, "tier"),
            status=_str(payload, "status"),
            total_price=_money(payload, "totalPrice"),
            currency=_str(payload, "currency"),
            user_email=_str(payload, "userEmail"),
            phone=_str(payload, "phone"),
            tour_name=_str(payload, "tourName"),
            occurred_at=_str(payload, "occurredAt"),
            payload=payload,
        )
    except InvalidMessage as exc:
        raise InvalidMessage(exc.reason, event_type=event_type, event_id=str(event_id or "")) from exc
