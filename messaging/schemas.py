"""Event-schema registry: domain apps register the schema of each event type they own from
``AppConfig.ready``, as they register handlers (:mod:`messaging.registry`).

``messaging`` never imports a domain app and knows no event type of its own: the envelope
(:mod:`messaging.envelope`) asks this registry which schema turns a body into a typed payload,
which key orders the events of one aggregate, and which dedup key a message without ``eventId``
gets. An event type nobody registered is unknown, and such a message is dead-lettered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, TypeVar

P_co = TypeVar("P_co", covariant=True)


class EventSchema(Protocol[P_co]):
    """How to read the body of the event types it is registered for.

    ``parse`` raises :class:`messaging.envelope.InvalidMessage` with a reason when a field is
    missing or mistyped; it never touches the database or a broker.
    """

    def parse(self, body: Mapping[str, Any]) -> P_co: ...

    def aggregate_key(self, payload: Any) -> str:
        """The aggregate the event is about (the Kafka key; events of one aggregate stay in order)."""
        ...

    def dedup_key(self, *, event_type: str, payload: Any) -> str:
        """A stable dedup key for a message that carries no ``eventId`` (a foreign producer's)."""
        ...


_schemas: dict[str, EventSchema[Any]] = {}


def register(*, event_types: Iterable[str], schema: EventSchema[Any]) -> None:
    """Register ``schema`` for ``event_types`` (idempotent for the same schema).

    Raises ``ValueError`` when another schema already owns one of them: one event type, one owner.
    """
    event_types = list(event_types)
    for event_type in event_types:
        owner = _schemas.get(event_type)
        if owner is not None and owner is not schema:
            raise ValueError(f"event type {event_type!r} already has a schema: {owner!r}")
    for event_type in event_types:
        _schemas[event_type] = schema


def unregister(*event_types: str) -> None:
    for event_type in event_types:
        _schemas.pop(event_type, None)


def schema_get(event_type: str) -> EventSchema[Any] | None:
    return _schemas.get(event_type)


def event_type_for_routing_key(routing_key: str) -> str:
    """The registered event type a routing key ``<event type>.<qualifier>`` starts with, else ``""``.

    The longest registered type wins, so ``a.b`` and ``a.b.c`` can both be registered.
    """
    best = ""
    for event_type in _schemas:
        if len(event_type) > len(best) and (routing_key == event_type or routing_key.startswith(f"{event_type}.")):
            best = event_type
    return best


def event_types_all() -> list[str]:
    return sorted(_schemas)
