"""Fixtures for the payments tests: a real dummy gateway over HTTP, bookings made by the real
service, and their ``tour.booked`` / ``tour.cancelled`` events applied through the real inbox."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from availability.models import Departure
from availability.tests.factories import DepartureFactory
from bookings.models import Booking
from bookings.services import booking_cancel_by_staff
from bookings.tests.factories import UserFactory, booking_create
from messaging.envelope import Event, event_parse
from messaging.inbox import inbox_process
from messaging.models import OutboxEvent
from messaging.registry import TRANSPORT_RABBITMQ, handler_get
from payments.dummy_gateway import TOKEN_SUCCESS, DummyGatewayServer, dummy_gateway_server
from payments.handlers import HANDLER_NAME

CLIENT_TIMEOUT = 0.5


@pytest.fixture
def gateway(tmp_path, settings) -> Iterator[DummyGatewayServer]:
    """The dummy gateway on a free port; ``tok_timeout`` answers after 3x the client's timeout."""
    server = dummy_gateway_server(
        port=0, db_path=str(tmp_path / "gateway.sqlite3"), hang_seconds=3 * CLIENT_TIMEOUT, slow_seconds=0.1
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.PAYMENTS_GATEWAY_URL = f"http://127.0.0.1:{server.server_port}"
    settings.PAYMENTS_GATEWAY_TIMEOUT_SECONDS = CLIENT_TIMEOUT
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def departure() -> Departure:
    return DepartureFactory(capacity=4)


def outbox_event(*, booking_id: int, event_type: str) -> Event:
    """The event the outbox recorded, parsed as a consumer would parse it off the wire."""
    row = OutboxEvent.objects.get(aggregate_id=str(booking_id), event_type=event_type)
    return event_parse(body=row.payload, headers=row.headers, routing_key=row.routing_key)


def apply_to_payments(event: Event, capture: Callable) -> None:
    """Apply one event with the payments handler through the inbox; its dispatch is captured, not run."""
    with capture(execute=False):
        inbox_process(handler=handler_get(HANDLER_NAME), events=[event], transport=TRANSPORT_RABBITMQ)


@pytest.fixture
def book(departure, django_capture_on_commit_callbacks) -> Callable[..., Booking]:
    """``book(token=..., seats=...)``: a booking by the real service, its tour.booked applied by payments."""

    def make(*, token: str = TOKEN_SUCCESS, seats: int = 1, user=None) -> Booking:
        booking = booking_create(user=user or UserFactory(), departure_id=departure.pk, seats=seats, tier="standard")
        Booking.objects.filter(pk=booking.pk).update(payment_token=token)
        apply_to_payments(
            outbox_event(booking_id=booking.pk, event_type="tour.booked"), django_capture_on_commit_callbacks
        )
        return booking

    return make


@pytest.fixture
def cancel(django_capture_on_commit_callbacks) -> Callable[[Booking], None]:
    """``cancel(booking)``: staff cancel it, and its tour.cancelled is applied by payments."""

    def run(booking: Booking) -> None:
        booking_cancel_by_staff(booking_id=booking.pk)
        apply_to_payments(
            outbox_event(booking_id=booking.pk, event_type="tour.cancelled"), django_capture_on_commit_callbacks
        )

    return run
