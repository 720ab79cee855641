"""Event handler: tour.booked / tour.cancelled -> email + SMS notification records (see services)."""

from __future__ import annotations

from collections.abc import Sequence

from messaging import registry
from messaging.envelope import Event
from messaging.events import TOUR_BOOKED, TOUR_CANCELLED
from notifications.services import notifications_create_for_events

HANDLER_NAME = "notifications"


def notifications_handle_batch(events: Sequence[Event]) -> None:
    """Runs inside the inbox transaction, only for events not yet applied by this handler."""
    notifications_create_for_events(events=events)


def register() -> None:
    registry.register(
        name=HANDLER_NAME,
        event_types=[TOUR_BOOKED, TOUR_CANCELLED],
        handle_batch=notifications_handle_batch,
        required_fields=("user_email", "tour_name", "total_price"),
    )
