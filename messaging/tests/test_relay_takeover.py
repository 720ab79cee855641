"""A relay that dies holding a claim costs seconds, not a lease; a live slow relay keeps its rows.

The relay under test runs in a process of its own (real PostgreSQL, real RabbitMQ for the relay
that takes over) and is SIGKILLed by the test; no shared service is stopped.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection

from messaging.models import OutboxDelivery
from messaging.queries import LIVE_RELAY_TOKENS_SQL
from messaging.relay.drain import outbox_relay_drain
from messaging.relay.liveness import relay_liveness_release, relay_token
from messaging.tests.conftest import RABBITMQ, fake_booking_ids, record_booking_events
from tests.support.database import subprocess_database_url
from tests.support.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 60
RECOVERY_BOUND_SECONDS = 5.0

# Claims a batch, says so, then hangs in the publisher: a live relay whose broker is very slow.
_SLOW_RELAY = """
import sys, time
import django
django.setup()
from messaging.relay.batch import outbox_relay_batch

class SlowPublisher:
    def begin(self, messages):
        print(f"claimed {len(messages)}", flush=True)
        time.sleep(3600)

    def complete(self, handle):
        raise AssertionError("never reached")

    def close(self):
        pass

outbox_relay_batch(destination=sys.argv[1], publisher=SlowPublisher())
"""


def _start_slow_relay(destination: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "OUTBOX_CLAIM_LEASE_SECONDS": str(LEASE_SECONDS),
    }
    return subprocess.Popen([sys.executable, "-c", _SLOW_RELAY, destination], cwd=ROOT, env=env, stdout=subprocess.PIPE)


def _read_line(process: subprocess.Popen[bytes], *, timeout: float) -> bytes:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    assert ready, "the relay process said nothing in time"
    return process.stdout.readline()


def _live_tokens() -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(LIVE_RELAY_TOKENS_SQL)
        return {row[0] for row in cursor.fetchall()}


def _delivered(destination: str) -> int:
    return OutboxDelivery.objects.filter(destination=destination, state="delivered").count()


def test_rows_of_a_sigkilled_relay_are_published_again_within_seconds_and_never_while_it_lives(amqp_reader):
    # given five events claimed by a live relay process that hangs in a slow broker (lease 60 s)
    reader = amqp_reader()
    events = record_booking_events(fake_booking_ids(5))
    slow = _start_slow_relay(RABBITMQ)
    try:
        assert _read_line(slow, timeout=60).strip() == b"claimed 5"
        claimed = OutboxDelivery.objects.filter(destination=RABBITMQ)
        assert {d.claimed_by for d in claimed} <= _live_tokens()

        # when another relay drains for two seconds while the slow one is alive
        watch_until = time.monotonic() + 2
        while time.monotonic() < watch_until:
            # then it takes nothing of the live relay's claim
            assert outbox_relay_drain(destination=RABBITMQ).delivered == 0
            time.sleep(0.05)

        # when the slow relay is SIGKILLed
        slow.kill()
        killed_at = time.monotonic()
        slow.wait(timeout=10)
        wait_until(
            lambda: outbox_relay_drain(destination=RABBITMQ).delivered >= 0 and _delivered(RABBITMQ) == 5,
            timeout=LEASE_SECONDS / 2,
            what="the dead relay's rows published by another relay",
        )
        recovery = time.monotonic() - killed_at
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.wait(timeout=10)

    # then they were published within seconds of its death, long before the lease, exactly once
    print(
        json.dumps(
            {
                "scenario": "relay_sigkilled_holding_a_claim",
                "lease_seconds": LEASE_SECONDS,
                "recovery_seconds": round(recovery, 3),
                "bound_seconds": RECOVERY_BOUND_SECONDS,
            }
        )
    )
    assert recovery < RECOVERY_BOUND_SECONDS
    received = reader.read(count=5)
    assert Counter(m.event_id for m in received) == Counter(str(e.event_id) for e in events)
    assert set(OutboxDelivery.objects.filter(destination=RABBITMQ).values_list("claimed_by", flat=True)) == {None}


def test_relay_token_is_held_while_the_process_lives_and_released_on_request():
    # given this process's relay token
    token = relay_token()

    # then its advisory lock is held, and the same token comes back while the connection lives
    assert token in _live_tokens()
    assert relay_token() == token

    # when it is released, then no lock is held for it, and the next claim takes a new token
    relay_liveness_release()
    assert token not in _live_tokens()
    assert relay_token() != token
    relay_liveness_release()


def test_a_process_forked_while_a_relay_thread_holds_the_guard_can_still_take_a_token():
    # given a relay thread in the middle of relay_token() (the guard held) when the process forks,
    # as Celery's prefork pool does when it replaces a child
    from messaging.relay import liveness as relay_liveness

    relay_liveness._guard.acquire()
    try:
        pid = os.fork()
        if pid == 0:  # the child: takes its own token, or is stuck on the copied guard
            try:
                relay_token()
                relay_liveness_release()
                os._exit(0)
            except BaseException:
                os._exit(2)
    finally:
        relay_liveness._guard.release()

    # then the child gets its token and exits within seconds
    deadline = time.monotonic() + 20
    exit_code = None
    while exit_code is None and time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            exit_code = os.waitstatus_to_exitcode(status)
        else:
            time.sleep(0.05)
    if exit_code is None:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert exit_code == 0, "the forked child deadlocked on the relay liveness guard"
