"""Inbox: effectively once per (handler, dedup key); Redis is the fast path, the DB the authority."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

import pytest
from django.core.cache import cache

from bookings.event_schema import TOUR_BOOKED, TOUR_CANCELLED
from messaging import registry
from messaging.envelope import Event, event_parse
from messaging.inbox import idempotency_key, inbox_forget_cache, inbox_process
from messaging.models import ProcessedMessage
from messaging.tests.consumer_support import booking_payload, foreign_payload

pytestmark = pytest.mark.django_db


class Recorder:
    def __init__(self) -> None:
        self.applied: list[str] = []
        self.fail = False

    def __call__(self, events: Sequence[Event]) -> None:
        if self.fail:
            raise RuntimeError("boom")
        self.applied += [e.dedup_key for e in events]


@pytest.fixture
def recorder() -> Iterator[tuple[registry.Handler, Recorder]]:
    rec = Recorder()
    handler = registry.register(name="test-inbox", event_types=[TOUR_BOOKED, TOUR_CANCELLED], handle_batch=rec)
    inbox_forget_cache(handler_name="test-inbox")
    yield handler, rec
    registry.unregister("test-inbox")
    inbox_forget_cache(handler_name="test-inbox")


def _event(**overrides) -> Event:
    return event_parse(body=json.dumps(booking_payload(**overrides)))


def test_inbox_applies_an_event_delivered_three_times_once(recorder, django_capture_on_commit_callbacks) -> None:
    # given
    handler, rec = recorder
    event = _event()
    # when
    results = []
    for _ in range(3):
        with django_capture_on_commit_callbacks(execute=True):
            results.append(inbox_process(handler=handler, events=[event], transport="rabbitmq"))
    # then
    assert rec.applied == [event.dedup_key]
    assert [len(r.applied) for r in results] == [1, 0, 0]
    assert ProcessedMessage.objects.filter(handler="test-inbox", dedup_key=event.dedup_key).count() == 1


def test_inbox_skips_a_cached_duplicate_without_touching_the_database(
    recorder, django_capture_on_commit_callbacks, django_assert_num_queries
) -> None:
    handler, _rec = recorder
    event = _event()
    with django_capture_on_commit_callbacks(execute=True):
        inbox_process(handler=handler, events=[event], transport="kafka")
    with django_assert_num_queries(0):
        result = inbox_process(handler=handler, events=[event], transport="kafka")
    assert result.duplicates == [event]


def test_inbox_database_decides_when_the_redis_keys_are_gone(recorder, django_capture_on_commit_callbacks) -> None:
    # given: applied once, then the cache is flushed
    handler, rec = recorder
    event = _event()
    with django_capture_on_commit_callbacks(execute=True):
        inbox_process(handler=handler, events=[event], transport="rabbitmq")
    cache.delete(idempotency_key(handler_name="test-inbox", dedup_key=event.dedup_key))
    # when
    with django_capture_on_commit_callbacks(execute=True):
        result = inbox_process(handler=handler, events=[event], transport="kafka")
    # then
    assert rec.applied == [event.dedup_key]
    assert result.duplicates == [event]


def test_inbox_dedups_within_one_batch_and_across_producers(recorder, django_capture_on_commit_callbacks) -> None:
    # given: ours twice, and a foreign message (no eventId) twice
    handler, rec = recorder
    ours = _event()
    foreign = event_parse(body=json.dumps(foreign_payload(bookingId=4242)), headers={"eventType": TOUR_BOOKED})
    # when
    with django_capture_on_commit_callbacks(execute=True):
        result = inbox_process(handler=handler, events=[ours, foreign, ours, foreign], transport="kafka")
    # then
    assert sorted(rec.applied) == sorted([ours.dedup_key, "tour.booked:4242"])
    assert len(result.duplicates) == 2


def test_inbox_rolls_back_its_record_when_the_handler_fails(recorder) -> None:
    # given
    handler, rec = recorder
    rec.fail = True
    event = _event()
    # when
    with pytest.raises(RuntimeError):
        inbox_process(handler=handler, events=[event], transport="rabbitmq")
    # then: nothing recorded, so a retry applies it
    assert not ProcessedMessage.objects.filter(handler="test-inbox").exists()
    rec.fail = False
    assert len(inbox_process(handler=handler, events=[event], transport="rabbitmq").applied) == 1
