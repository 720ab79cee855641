"""The booking events' schema through event_parse: our messages, foreign producers' messages, and
every kind of bad booking body (the wire contract in ARCHITECTURE.md)."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest

from bookings.event_schema import (
    PAYMENT_CAPTURED,
    TOUR_BOOKED,
    TOUR_CANCELLED,
    BookingEventPayload,
)
from messaging.envelope import InvalidMessage, event_parse
from messaging.tests.consumer_support import booking_payload, foreign_payload


def test_event_parse_keeps_our_event_id_as_the_dedup_key() -> None:
    # given
    payload = booking_payload()
    # when
    event = event_parse(body=json.dumps(payload).encode(), headers={"correlationId": "cid-1"})
    # then
    assert event.dedup_key == payload["eventId"]
    assert event.event_id == uuid.UUID(payload["eventId"])
    assert event.correlation_id == "cid-1"
    assert event.aggregate_key == str(payload["bookingId"])
    assert event.payload == BookingEventPayload(
        booking_id=str(payload["bookingId"]),
        tour_id=1,
        departure_id=1,
        user_id=1,
        seats=2,
        tier="premium",
        status="confirmed",
        total_price=Decimal("199.99"),
        currency="USD",
        user_email="user@example.com",
        phone="+33612345678",
        tour_name="Paris City Tour",
    )


def test_event_parse_derives_a_stable_dedup_key_for_a_foreign_message_without_event_id() -> None:
    # given: the lesson's Node.js producer: no eventId/eventType, numeric price, only a header
    payload = foreign_payload(bookingId=42)
    body = json.dumps(payload).encode()
    # when
    first = event_parse(body=body, headers={"eventType": TOUR_BOOKED, "correlationId": "node-cid"})
    second = event_parse(body=body, headers={"eventType": TOUR_BOOKED})
    # then
    assert first.dedup_key == second.dedup_key == "tour.booked:42"
    assert first.event_id is None
    assert first.payload.total_price == Decimal("199.99")
    assert first.correlation_id == "node-cid"


def test_event_parse_takes_the_event_type_from_the_routing_key_when_nothing_else_says() -> None:
    payload = foreign_payload(bookingId=7)
    event = event_parse(body=json.dumps(payload), routing_key="tour.cancelled.premium")
    assert event.event_type == TOUR_CANCELLED
    assert event.dedup_key == "tour.cancelled:7"


def test_payment_events_parse_with_the_booking_schema_and_keep_their_payment_fields_in_the_body() -> None:
    payload = booking_payload(eventType=PAYMENT_CAPTURED, paymentStatus="paid", amountMinor=19999)
    event = event_parse(body=json.dumps(payload), routing_key="payment.captured.premium")
    assert (event.event_type, event.payload.booking_id) == (PAYMENT_CAPTURED, str(payload["bookingId"]))
    assert event.body["amountMinor"] == 19999


@pytest.mark.parametrize(
    ("reason_field", "expected"),
    [("payment_declined", "payment_declined"), (None, ""), (42, "")],
)
def test_the_cancellation_reason_is_read_but_never_rejects_a_message(reason_field, expected) -> None:
    payload = booking_payload(eventType=TOUR_CANCELLED, cancellationReason=reason_field)
    assert event_parse(body=json.dumps(payload)).payload.cancellation_reason == expected


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (json.dumps(booking_payload(eventType="tour.exploded")).encode(), "unknown event type"),
        (json.dumps(booking_payload(bookingId=None)).encode(), "bookingId"),
        (json.dumps(booking_payload(bookingId=True)).encode(), "bookingId"),
        (json.dumps(booking_payload(bookingId="  ")).encode(), "bookingId"),
        (json.dumps(booking_payload(seats="two")).encode(), "seats must be an integer"),
        (json.dumps(booking_payload(seats=0)).encode(), "seats must be >= 1"),
        (json.dumps(booking_payload(totalPrice="abc")).encode(), "totalPrice is not a decimal"),
        (json.dumps(booking_payload(totalPrice="-1")).encode(), "non-negative finite amount"),
        (json.dumps(booking_payload(totalPrice=[1])).encode(), "decimal string or a number"),
        (json.dumps(booking_payload(eventId="not-a-uuid")).encode(), "eventId is not a UUID"),
        (json.dumps(booking_payload(userEmail=["a"])).encode(), "userEmail must be a string"),
    ],
)
def test_event_parse_rejects_bad_booking_messages_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessage) as excinfo:
        event_parse(body=body)
    assert reason in excinfo.value.reason


def test_event_missing_lists_the_required_fields_an_event_lacks() -> None:
    event = event_parse(
        body=json.dumps(foreign_payload(departureId=None, phone=None)), headers={"eventType": "tour.booked"}
    )
    assert event.missing(("departure_id", "seats", "phone")) == ["departure_id", "phone"]
