"""Faults: a broker stopped in the middle of a burst, a relay killed between publish and record.

These stop real services (``scripts/services stop|start``) or SIGKILL a relay process; they are
few, short, and always bring the services back up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection

from messaging.models import OutboxDelivery
from messaging.relay.drain import outbox_relay_drain
from messaging.tests.conftest import (
    KAFKA,
    RABBITMQ,
    assert_in_order_per_aggregate,
    fake_booking_ids,
    record_booking_events,
)
from tests.support.database import subprocess_database_url
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.fault]

ROOT = Path(__file__).resolve().parents[2]


def _services(*args: str) -> None:
    subprocess.run(["bash", str(ROOT / "scripts" / "services"), *args], check=True, timeout=180, capture_output=True)


class RelayLoop:
    """The relay as the sweeper runs it, in a background thread, until stopped."""

    def __init__(self, destination: str):
        self.destination = destination
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                result = outbox_relay_drain(destination=self.destination, batch_size=5, time_budget_seconds=1)
                if not result.batches:
                    self._stop.wait(0.05)
        except BaseException as exc:  # reported by stop()
            self.error = exc
        finally:
            connection.close()

    def __enter__(self) -> RelayLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        assert self.error is None, self.error


def _all_delivered(destination: str) -> bool:
    return not OutboxDelivery.objects.filter(destination=destination).exclude(state="delivered").exists()


def test_rabbitmq_stopped_mid_burst_then_restarted_delivers_every_event_exactly_once_in_order(amqp_reader):
    # given a durable queue bound to the exchange and a relay running
    reader = amqp_reader(durable=True)
    bookings = fake_booking_ids(10)
    try:
        with RelayLoop(RABBITMQ):
            # when a burst of bookings is written while RabbitMQ is stopped half-way, then started
            events = record_booking_events(bookings[:5], cancel=True)
            wait_until(lambda: _all_delivered(RABBITMQ), timeout=30, what="first half delivered")
            _services("stop", "rabbitmq")
            events += record_booking_events(bookings[5:], cancel=True)
            time.sleep(1)  # the relay meets the outage (no condition to wait on: nothing can change)
            assert not _all_delivered(RABBITMQ)
            _services("start", "rabbitmq")
            wait_until(lambda: _all_delivered(RABBITMQ), timeout=60, interval=0.2, what="backlog drained")
    finally:
        _services("up")

    # then a fresh consumer gets every event exactly once, each booking in order, no attempt burned
    reader.reopen()
    received = reader.read(count=len(events), timeout=30)
    assert Counter(m.event_id for m in received) == Counter(str(e.event_id) for e in events)
    assert_in_order_per_aggregate(received, events)
    assert set(OutboxDelivery.objects.filter(destination=RABBITMQ).values_list("attempts", flat=True)) == {1}


def test_kafka_stopped_mid_burst_then_restarted_delivers_every_event_exactly_once_in_order(kafka_reader):
    # given a fresh Kafka reader and a relay running
    reader = kafka_reader()
    bookings = fake_booking_ids(10)
    try:
        with RelayLoop(KAFKA):
            # when a burst of bookings is written while Kafka is stopped half-way, then started
            events = record_booking_events(bookings[:5], cancel=True)
            wait_until(lambda: _all_delivered(KAFKA), timeout=30, what="first half delivered")
            _services("stop", "kafka")
            events += record_booking_events(bookings[5:], cancel=True)
            _services("start", "kafka")
            wait_until(lambda: _all_delivered(KAFKA), timeout=90, interval=0.2, what="backlog drained")
    finally:
        _services("up")

    # then every event is on the topic exactly once, each booking in order, no attempt burned
    received = reader.read(event_ids={str(e.event_id) for e in events}, timeout=60)
    assert Counter(m.event_id for m in received) == Counter(str(e.event_id) for e in events)
    assert_in_order_per_aggregate(received, events)
    assert set(OutboxDelivery.objects.filter(destination=KAFKA).values_list("attempts", flat=True)) == {1}


_CRASHING_RELAY = """
import os, signal, sys
import django
django.setup()
from messaging.relay import batch

def crash_before_record(**_kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

batch.record_outcome = crash_before_record
batch.outbox_relay_batch(destination=sys.argv[1])
"""


@pytest.mark.parametrize("destination", [RABBITMQ, KAFKA])
def test_relay_killed_between_publish_and_record_publishes_again_and_loses_nothing(
    destination, settings, amqp_reader, kafka_reader
):
    # given three events and a relay process that dies (SIGKILL) after publishing, before recording
    reader = amqp_reader() if destination == RABBITMQ else kafka_reader()
    events = record_booking_events(fake_booking_ids(3))
    env = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "OUTBOX_CLAIM_LEASE_SECONDS": "1",
    }

    # when it runs
    crashed = subprocess.run(
        [sys.executable, "-c", _CRASHING_RELAY, destination], cwd=ROOT, env=env, timeout=120, capture_output=True
    )

    # then it was killed, the broker has the events, and the rows are still pending (lease only)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr.decode()[-2000:]
    deliveries = OutboxDelivery.objects.filter(destination=destination)
    assert {(d.state, d.attempts) for d in deliveries} == {("pending", 0)}

    # when the lease has expired and a relay runs again
    wait_until(lambda: outbox_relay_drain(destination=destination).delivered == 3, timeout=10, what="re-delivery")

    # then every event was published twice (at-least-once) and is now recorded delivered
    if destination == RABBITMQ:
        received = reader.read(count=6)
    else:
        received = reader.read(event_ids={str(e.event_id) for e in events})
    assert Counter(m.event_id for m in received) == Counter(str(e.event_id) for e in events * 2)
    assert set(deliveries.all().values_list("state", flat=True)) == {"delivered"}
