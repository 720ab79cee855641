"""Event handler: tour.booked / tour.cancelled -> email + SMS notification records (see services)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from bookings.event_schema import (
    PAYMENT_EVENT_TYPES,
    PAYMENT_FAILED,
    TOUR_BOOKED,
    TOUR_CANCELLED,
    BookingEventPayload,
)
from messaging import registry
from messaging.envelope import Event
from notifications.services import notifications_create_for_events

HANDLER_NAME = "notifications"


def notifications_handle_batch(events: Sequence[Event[BookingEventPayload]]) -> None:
    """Runs inside the inbox transaction, only for events not yet applied by this handler."""
    told = [_as_notified(event) for event in events if event.event_type != PAYMENT_FAILED]
    notifications_create_for_events(events=told)


def _as_notified(event: Event[BookingEventPayload]) -> Event[BookingEventPayload]:
    """The cancellation of a declined payment is told as "payment failed" (the reason the customer
    needs), once: its ``payment.failed`` event is bound here (so it is routable) but sends nothing."""
    if event.event_type == TOUR_CANCELLED and event.payload.cancellation_reason == "payment_declined":
        return dataclasses.replace(event, event_type=PAYMENT_FAILED)
    return event


def register() -> None:
    registry.register(
        name=HANDLER_NAME,
        event_types=[TOUR_BOOKED, TOUR_CANCELLED, *PAYMENT_EVENT_TYPES],
        handle_batch=notifications_handle_batch,
        required_fields=("user_email", "tour_name", "total_price"),
    )
