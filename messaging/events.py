"""The generic half of the wire contract (see ARCHITECTURE.md): header names and routing keys.

Event types are not named here: each domain app owns its own as constants, next to their schema
(registered in :mod:`messaging.schemas`). A routing key is ``<event type>.<qualifier>``, the
qualifier chosen by the producing app; it is derived with :func:`routing_key_for`, never typed inline.
"""

from __future__ import annotations

from typing import Final

# AMQP / Kafka header names (the wire contract spells them in camelCase).
HEADER_EVENT_TYPE: Final = "eventType"
HEADER_EVENT_ID: Final = "eventId"
HEADER_CORRELATION_ID: Final = "correlationId"


def routing_key_for(event_type: str, qualifier: str) -> str:
    """``order.placed`` + ``eu`` -> ``order.placed.eu``."""
    return f"{event_type}.{qualifier}"


def binding_patterns_for(*event_types: str) -> list[str]:
    """Topic-exchange binding patterns matching every qualifier of the given event types."""
    return [f"{event_type}.*" for event_type in event_types]
