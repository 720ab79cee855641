"""Event handler: tour.booked / tour.cancelled -> the availability read model (see read_model).

availability sits below bookings (bookings reserves seats through it), so it cannot import the
booking events: bookings registers this handler from its ``AppConfig.ready``, naming the event
types that add and remove seats. The dependency points down.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from availability.read_model import HANDLER_NAME, SeatsPayload, departure_availability_apply, seat_events_register
from messaging import registry
from messaging.envelope import Event


def availability_handle_batch(events: Sequence[Event[SeatsPayload]]) -> None:
    """Runs inside the inbox transaction, only for events not yet applied by this handler."""
    departure_availability_apply(events=events)


def register(*, seats_added_by: Iterable[str], seats_removed_by: Iterable[str]) -> None:
    registry.register(
        name=HANDLER_NAME,
        event_types=seat_events_register(added_by=seats_added_by, removed_by=seats_removed_by),
        handle_batch=availability_handle_batch,
        required_fields=("departure_id", "seats"),
    )
