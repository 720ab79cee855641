"""Event handler: tour.booked / tour.cancelled -> the availability read model (see read_model)."""

from __future__ import annotations

from collections.abc import Sequence

from availability.read_model import HANDLER_NAME, departure_availability_apply
from messaging import registry
from messaging.envelope import Event
from messaging.events import TOUR_BOOKED, TOUR_CANCELLED


def availability_handle_batch(events: Sequence[Event]) -> None:
    """Runs inside the inbox transaction, only for events not yet applied by this handler."""
    departure_availability_apply(events=events)


def register() -> None:
    registry.register(
        name=HANDLER_NAME,
        event_types=[TOUR_BOOKED, TOUR_CANCELLED],
        handle_batch=availability_handle_batch,
        required_fields=("departure_id", "seats"),
    )
