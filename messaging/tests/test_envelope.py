"""event_parse: the generic envelope (id, type, correlation, dedup key, occurred-at, headers, body)
over a schema registered by its owner; every kind of bad message is an InvalidMessage with a reason.

A toy ``order.placed`` schema stands for any domain's: the envelope knows no event type of its own.
The booking events' schema is tested in ``bookings/tests/test_event_schema.py``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from messaging import schemas
from messaging.envelope import InvalidMessage, body_int, body_str, event_parse

ORDER_PLACED = "order.placed"
ORDER_PLACED_EXPRESS = "order.placed.express"


@dataclass(frozen=True)
class OrderPayload:
    order_id: str
    items: int | None
    note: str


class OrderSchema:
    def parse(self, body: Mapping[str, Any]) -> OrderPayload:
        order_id = body_str(body, "orderId")
        if not order_id:
            raise InvalidMessage("missing field orderId")
        return OrderPayload(order_id=order_id, items=body_int(body, "items", minimum=1), note=body_str(body, "note"))

    def aggregate_key(self, payload: OrderPayload) -> str:
        return payload.order_id

    def dedup_key(self, *, event_type: str, payload: OrderPayload) -> str:
        return f"{event_type}/{payload.order_id}"


ORDER_SCHEMA = OrderSchema()


@pytest.fixture(autouse=True)
def order_schema() -> Iterator[None]:
    schemas.register(event_types=[ORDER_PLACED, ORDER_PLACED_EXPRESS], schema=ORDER_SCHEMA)
    yield
    schemas.unregister(ORDER_PLACED, ORDER_PLACED_EXPRESS)


def _body(**fields: Any) -> dict[str, Any]:
    return {"eventId": str(uuid.uuid4()), "eventType": ORDER_PLACED, "orderId": "o-1", "items": 2, **fields}


def test_event_parse_gives_the_envelope_and_the_payload_the_schema_typed() -> None:
    # given
    body = _body(occurredAt="2026-01-02T03:04:05+00:00", note="gift")
    headers = {"correlationId": "cid-1", "x-extra": "kept"}
    # when
    event = event_parse(body=json.dumps(body).encode(), headers=headers)
    # then
    assert event.event_type == ORDER_PLACED
    assert event.event_id == uuid.UUID(body["eventId"])
    assert event.dedup_key == body["eventId"]
    assert event.correlation_id == "cid-1"
    assert event.occurred_at == "2026-01-02T03:04:05+00:00"
    assert event.aggregate_key == "o-1"
    assert event.payload == OrderPayload(order_id="o-1", items=2, note="gift")
    assert event.headers["x-extra"] == "kept"
    assert event.body == body


def test_event_parse_asks_the_schema_for_the_dedup_key_of_a_message_without_event_id() -> None:
    # given: a foreign producer's message, its type only in a header
    body = json.dumps({"orderId": "o-42", "items": 1}).encode()
    # when
    first = event_parse(body=body, headers={"eventType": ORDER_PLACED})
    second = event_parse(body=body, headers={"eventType": ORDER_PLACED})
    # then
    assert first.dedup_key == second.dedup_key == "order.placed/o-42"
    assert first.event_id is None


def test_event_parse_takes_the_event_id_from_the_header_or_the_message_id() -> None:
    body = json.dumps({"eventType": ORDER_PLACED, "orderId": "o-1"})
    header_id, message_id = uuid.uuid4(), uuid.uuid4()
    assert event_parse(body=body, headers={"eventId": str(header_id)}).event_id == header_id
    assert event_parse(body=body, message_id=str(message_id)).event_id == message_id


@pytest.mark.parametrize(
    ("routing_key", "event_type"),
    [
        ("order.placed.eu", ORDER_PLACED),
        ("order.placed", ORDER_PLACED),
        ("order.placed.express.eu", ORDER_PLACED_EXPRESS),
    ],
)
def test_event_parse_takes_the_longest_registered_type_the_routing_key_starts_with(
    routing_key: str, event_type: str
) -> None:
    event = event_parse(body=json.dumps({"orderId": "o-7"}), routing_key=routing_key)
    assert event.event_type == event_type


def test_event_parse_takes_the_correlation_id_from_header_then_property_then_body() -> None:
    body = json.dumps(_body(correlationId="from-body"))
    assert event_parse(body=body, headers={"correlationId": "from-header"}, correlation_id="prop").correlation_id == (
        "from-header"
    )
    assert event_parse(body=body, correlation_id="prop").correlation_id == "prop"
    assert event_parse(body=body).correlation_id == "from-body"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "malformed JSON"),
        (b"\xff\xfe garbage", "malformed JSON"),
        (b"[1, 2]", "JSON object"),
        (json.dumps(_body(eventType="order.exploded")).encode(), "unknown event type 'order.exploded'"),
        (json.dumps({"orderId": "o-1"}).encode(), "unknown event type ''"),
        (json.dumps(_body(eventId="not-a-uuid")).encode(), "eventId is not a UUID"),
        (json.dumps(_body(orderId=None)).encode(), "missing field orderId"),
        (json.dumps(_body(items="two")).encode(), "items must be an integer"),
        (json.dumps(_body(items=0)).encode(), "items must be >= 1"),
        (json.dumps(_body(note=["a"])).encode(), "note must be a string"),
        (json.dumps(_body(occurredAt=5)).encode(), "occurredAt must be a string"),
    ],
)
def test_event_parse_rejects_bad_messages_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidMessage) as excinfo:
        event_parse(body=body)
    assert reason in excinfo.value.reason


def test_an_unknown_type_named_only_by_the_routing_key_is_named_in_the_reason() -> None:
    with pytest.raises(InvalidMessage) as excinfo:
        event_parse(body=json.dumps({"orderId": "o-1"}), routing_key="order.lost.eu")
    assert (excinfo.value.reason, excinfo.value.event_type) == ("unknown event type 'order.lost'", "order.lost")


def test_a_schema_rejection_carries_the_event_type_and_id_for_the_dead_letter_record() -> None:
    # given
    body = _body(items="many")
    # when
    with pytest.raises(InvalidMessage) as excinfo:
        event_parse(body=json.dumps(body))
    # then
    assert (excinfo.value.event_type, excinfo.value.event_id) == (ORDER_PLACED, body["eventId"])


def test_event_parse_rejects_an_oversized_body_before_decoding_it(settings) -> None:
    # given
    settings.EVENTS_MAX_BODY_BYTES = 1024
    body = json.dumps(_body(note="x" * 2000)).encode()
    # when / then
    with pytest.raises(InvalidMessage, match="body too large"):
        event_parse(body=body)


def test_event_missing_lists_the_required_payload_fields_an_event_lacks() -> None:
    event = event_parse(body=json.dumps(_body(items=None)))
    assert event.missing(("order_id", "items", "note")) == ["items", "note"]
