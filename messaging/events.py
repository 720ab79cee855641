"""The wire contract: event types, routing keys and the JSON envelope (see ARCHITECTURE.md).

Every module that names an event type imports it from here; routing keys are derived,
never typed inline.
"""

from __future__ import annotations

from typing import Final

TOUR_BOOKED: Final = "tour.booked"
TOUR_CANCELLED: Final = "tour.cancelled"
EVENT_TYPES: Final = (TOUR_BOOKED, TOUR_CANCELLED)

TIER_PREMIUM: Final = "premium"
TIER_STANDARD: Final = "standard"
TIERS: Final = (TIER_PREMIUM, TIER_STANDARD)

# AMQP / Kafka header names (the wire contract spells them in camelCase).
HEADER_EVENT_TYPE: Final = "eventType"
HEADER_EVENT_ID: Final = "eventId"
HEADER_CORRELATION_ID: Final = "correlationId"


def routing_key_for(event_type: str, tier: str) -> str:
    """``tour.booked`` + ``premium`` -> ``tour.booked.premium``."""
    return f"{event_type}.{tier}"


def binding_patterns_for(*event_types: str) -> list[str]:
    """Topic-exchange binding patterns matching every tier of the given event types."""
    return [f"{event_type}.*" for event_type in event_types]
