"""The wire contract: event types, routing keys and the JSON envelope (see ARCHITECTURE.md).

Every module that names an event type imports it from here; routing keys are derived,
never typed inline.
"""

from __future__ import annotations

from typing import Final

TOUR_BOOKED: Final = "tour.booked"
TOUR_CANCELLED: Final = "tour.cancelled"
# Payment outcomes (payments app), routed as ``payment.<outcome>.<tier>`` on the same exchange and
# topic, so consumers bound to ``tour.booked.*`` never see them.
PAYMENT_CAPTURED: Final = "payment.captured"
PAYMENT_FAILED: Final = "payment.failed"
PAYMENT_REFUNDED: Final = "payment.refunded"
PAYMENT_EVENT_TYPES: Final = (PAYMENT_CAPTURED, PAYMENT_FAILED, PAYMENT_REFUNDED)
EVENT_TYPES: Final = (TOUR_BOOKED, TOUR_CANCELLED, *PAYMENT_EVENT_TYPES)

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
