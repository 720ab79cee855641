"""event_parse: our messages, foreign producers' messages, and every kind of bad message."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest

from messaging.envelope import InvalidMessage, event_parse
from messaging.events import TOUR_BOOKED, TOUR_CANCELLED
from messaging.tests.consumer_support import booking_payload, foreign_payload


def test_event_parse_keeps_our_event_id_as_the_dedup_key() -> None:
    # given
    payload = booking_payload()
    # when
    event = event_parse(body=json.dumps(payload).encode(), headers={"correlationId": "cid-1"})
    # then
    assert event.dedup_key == payload["eventId"]
    assert event.event_id == uuid.UUID(payload["eventId"])
    assert event.total_price == Decimal("199.99")
    assert event.correlation_id == "cid-1"
    assert (event.booking_id, event.seats, event.user_email) == (str(payload["bookingId"]), 2, "user@example.com")


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
    assert first.total_price == Decimal("199.99")
    assert first.correlation_id == "node-cid"


def test_event_parse_takes_the_event_type_from_the_routing_key_when_nothing_else_says() -> None:
    payload = foreign_payload(bookingId=7)
    event = event_parse(body=json.dumps(payload), routing_key="tour.cancelled.premium")
    assert event.event_type == TOUR_CANCELLED
    assert event.dedup_key == "tour.cancelled:7"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps(booking_payload(eventType="tour.exploded")).encode(), "unknown event type"),
        (json.dumps(booking_payload(bookingId=None)).encode(), "bookingId"),
        (json.dumps(booking_payload(seats="two")).encode(), "seats must be an integer"),
        (json.dumps(booking_payload(seats=0)).encode(), "seats must be >= 1"),
        (json.dumps(booking_payload(totalPrice="abc")).encode(), "totalPrice is not a decimal"),
        (json.dumps(booking_payload(eventId="not-a-uuid")).encode(), "eventId is not a UUID"),
        (json.dumps(booking_payload(userEmail=["a"])).encode(), "userEmail must be a string"),
        (b"\xff\xfe garbage", "malformed JSON"),
    ],
)
def test_event_parse_rejects_bad_messages_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessage) as excinfo:
        event_parse(body=body)
    assert reason in excinfo.value.reason


def test_event_parse_rejects_an_oversized_body_before_decoding_it(settings) -> None:
    # given
    settings.EVENTS_MAX_BODY_BYTES = 1024
    body = json.dumps(booking_payload(tourName="x" * 2000)).encode()
    # when / then
    with pytest.raises(InvalidMessage, match="body too large"):
        event_parse(body=body)


def test_event_missing_lists_the_required_fields_an_event_lacks() -> None:
    event = event_parse(
        body=json.dumps(foreign_payload(departureId=None, phone=None)), headers={"eventType": "tour.booked"}
    )
    assert event.missing(("departure_id", "seats", "phone")) == ["departure_id", "phone"]
