"""Event handler: tour.booked -> a charge, tour.cancelled -> a refund (see ``payments.services``).

Fed by its own durable RabbitMQ queue ``payments.tour_events`` (+ retry queues and DLQ) by default
(``PAYMENTS_TRANSPORT``). The inbox applies each event once; the rows are unique per booking
and kind besides, so even a replay with purged inbox rows cannot charge twice.
"""

from __future__ import annotations

from collections.abc import Sequence

from bookings.event_schema import TOUR_BOOKED, TOUR_CANCELLED, BookingEventPayload
from messaging import registry
from messaging.envelope import Event
from payments.services import payments_create_for_events

HANDLER_NAME = "payments"


def payments_handle_batch(events: Sequence[Event[BookingEventPayload]]) -> None:
    """Runs inside the inbox transaction, only for events not yet applied by this handler."""
    payments_create_for_events(events=events)


def register() -> None:
    # Off unless EVENT_HANDLER_ROUTES names it (the settings do, from PAYMENTS_TRANSPORT): a handler
    # that moves money is never fed by a transport by accident.
    registry.register(
        name=HANDLER_NAME,
        event_types=[TOUR_BOOKED, TOUR_CANCELLED],
        handle_batch=payments_handle_batch,
        default_route=registry.ROUTE_OFF,
    )
