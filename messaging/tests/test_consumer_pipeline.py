"""The consumer pipeline both transports share, with a recording transport (no broker): which
outcome each message gets, and the two transports' shapes (a queue per handler, a shared log)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from bookings.event_schema import TOUR_BOOKED, TOUR_CANCELLED
from messaging import registry
from messaging.consumers.pipeline import Pipeline, Received, Rejection
from messaging.envelope import Event
from messaging.inbox import InboxResult
from messaging.models import ProcessedMessage
from messaging.registry import TRANSPORT_KAFKA, Handler
from messaging.tests.consumer_support import booking_payload

pytestmark = pytest.mark.django_db(transaction=True)


class Recorder:
    """A transport that records each outcome by message (the message is only a label here)."""

    name = TRANSPORT_KAFKA
    reraise: tuple[type[BaseException], ...] = ()

    def __init__(self, attempts: int = 2) -> None:
        self.attempts = attempts
        self.finished: list[tuple[str, str]] = []
        self.rejected: list[tuple[str, str, Rejection]] = []
        self.gave_up: list[tuple[str, str, str]] = []
        self.committed_when_done: list[bool] = []

    def done(self, handler: Handler, items: Sequence[Received[str]], result: InboxResult) -> None:
        keys = [event.dedup_key for event in result.applied]
        self.committed_when_done.append(ProcessedMessage.objects.filter(dedup_key__in=keys).count() == len(keys))
        self.finished += [(handler.name, item.message) for item in items]

    def invalid(self, handler: Handler | None, item: Received[str], rejection: Rejection) -> None:
        self.rejected.append((handler.name if handler else "", item.message, rejection))

    def failed(self, handler: Handler, item: Received[str], event: Event, error: str) -> None:
        self.gave_up.append((handler.name, item.message, error))


class Refuses:
    """Applies batches, except any that holds the poison event."""

    def __init__(self, poison: str = "") -> None:
        self.poison = poison
        self.calls = 0
        self.applied: list[str] = []

    def __call__(self, events: Sequence[Event]) -> None:
        self.calls += 1
        keys = [e.dedup_key for e in events]
        if self.poison in keys or self.poison == "*":
            raise RuntimeError("refused")
        self.applied += keys


@pytest.fixture
def probe() -> Iterator[Any]:
    made: list[str] = []

    def make(name: str = "probe", *, event_types=(TOUR_BOOKED,), poison: str = "", required=()) -> tuple:
        handle = Refuses(poison)
        handler = registry.register(name=name, event_types=event_types, handle_batch=handle, required_fields=required)
        made.append(name)
        return handler, handle

    yield make
    for name in made:
        registry.unregister(name)


def _received(label: str, payload: dict[str, Any] | bytes) -> Received[str]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Received(message=label, body=body, headers={})


def test_a_queue_batch_is_applied_in_one_transaction_and_done_only_after_it_committed(probe) -> None:
    # given three valid messages on the probe's own queue
    handler, handle = probe()
    transport = Recorder()
    items = [_received(f"m{n}", booking_payload()) for n in range(3)]
    # when
    Pipeline(transport).handle_queue(handler, items)
    # then one batch, all done, and the inbox rows were committed when the transport was told
    assert handle.calls == 1 and len(handle.applied) == 3
    assert transport.finished == [("probe", "m0"), ("probe", "m1"), ("probe", "m2")]
    assert transport.committed_when_done == [True]
    assert (transport.rejected, transport.gave_up) == ([], [])


def test_invalid_messages_get_the_reason_and_an_unhandled_type_is_invalid_only_on_a_queue_of_its_own(
    probe,
) -> None:
    # given a malformed message, a type the probe does not handle, and one missing a required field
    handler, _ = probe(required=("user_email",))
    items = [
        _received("bad-json", b"{nope"),
        _received("cancelled", booking_payload(eventType=TOUR_CANCELLED)),
        _received("no-email", booking_payload(userEmail=None)),
    ]
    # when the same messages come from the probe's queue, then from a shared log
    on_queue, on_log = Recorder(), Recorder()
    Pipeline(on_queue).handle_queue(handler, items)
    Pipeline(on_log).handle_log([handler], items)
    # then on its queue all three are invalid, with their reasons (and what is known of the event)
    reasons = {label: rejection for _, label, rejection in on_queue.rejected}
    assert "malformed JSON" in reasons["bad-json"].reason
    assert "does not handle tour.cancelled" in reasons["cancelled"].reason
    assert "user_email" in reasons["no-email"].reason
    assert reasons["no-email"].event_type == TOUR_BOOKED and reasons["no-email"].event_id
    # and on a shared log the other type is simply not the probe's; a parse failure belongs to no handler
    assert sorted((name, label) for name, label, _ in on_log.rejected) == [("", "bad-json"), ("probe", "no-email")]
    assert on_queue.finished == on_log.finished == []


def test_a_failed_batch_is_split_and_only_the_culprit_fails_after_the_transports_attempts(probe) -> None:
    # given five events, one of which the handler always refuses
    payloads = [booking_payload() for _ in range(5)]
    handler, handle = probe(poison=payloads[2]["eventId"])
    transport = Recorder(attempts=2)
    # when
    Pipeline(transport).handle_log([handler], [_received(f"m{n}", p) for n, p in enumerate(payloads)])
    # then the four others are applied once each, the culprit tried twice on its own, then failed
    assert sorted(handle.applied) == sorted(p["eventId"] for n, p in enumerate(payloads) if n != 2)
    assert sorted(label for _, label in transport.finished) == ["m0", "m1", "m3", "m4"]
    assert [(name, label) for name, label, _ in transport.gave_up] == [("probe", "m2")]
    assert transport.gave_up[0][2] == "RuntimeError: refused"
    assert handle.calls == 1 + 4 + 2  # the batch, the four alone, the culprit's two attempts


def test_a_lone_event_that_keeps_failing_is_tried_exactly_the_transports_attempts(probe) -> None:
    # given one event its handler always refuses
    handler, handle = probe(poison="*")
    transport = Recorder(attempts=3)
    # when
    Pipeline(transport).handle_log([handler], [_received("m0", booking_payload())])
    # then three calls in all (no extra batch attempt for a batch of one), then failed
    assert handle.calls == 3
    assert [label for _, label, _ in transport.gave_up] == ["m0"]
