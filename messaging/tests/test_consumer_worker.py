"""The RabbitMQ consumer hosted in a real ``celery -A tourapp worker`` (the bootstep), end to end."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from messaging.amqp import events_connection
from messaging.consumers.rabbitmq_topology import queue_name_for
from messaging.models import DeadLetter
from messaging.tests.consumer_support import amqp_publish, booking_payload, wire_headers
from notifications.models import Notification
from tests.support.database import subprocess_database_url
from tests.support.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def _consumer_count(queue: str) -> int:
    with events_connection() as connection:
        try:
            return connection.default_channel.queue_declare(queue=queue, passive=True).consumer_count
        except Exception:
            return 0


@pytest.fixture
def worker(amqp_env, tmp_path):
    """A solo-pool worker with this test's exchange, queues, task queue and test database; reaped after."""
    log_path = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "EVENTS_EXCHANGE": settings.EVENTS_EXCHANGE,
        "EVENTS_QUEUE_PREFIX": settings.EVENTS_QUEUE_PREFIX,
        "EVENTS_RETRY_DELAYS": "0.05,0.1",
        "CELERY_TASK_DEFAULT_QUEUE": f"celery.ctest.{uuid.uuid4().hex[:8]}",
        "NOTIFICATIONS_TRANSPORT": "rabbitmq",
        "AVAILABILITY_TRANSPORT": "kafka",
        "TOURAPP_ROLE": "worker",
        "LOG_FORMAT": "json",
    }
    argv = [
        str(Path(sys.executable).parent / "celery"), "-A", "tourapp", "worker", "--pool", "solo",
        "--loglevel", "INFO", "-n", f"ctest-{uuid.uuid4().hex[:6]}@%h",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until(
            lambda: process.poll() is None and _consumer_count(queue_name_for("notifications")) > 0,
            timeout=60,
            what=f"the worker's event consumer (log: {log_path.read_text()[-2000:]})",
            interval=0.2,
        )
        yield process, log_path
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def test_celery_worker_bootstep_consumes_events_and_sends_the_notifications(worker) -> None:
    # given: a running worker; a malformed message followed by a valid one
    process, log_path = worker
    payload = booking_payload()
    # when
    amqp_publish([(b"not json at all", {}), (payload, wire_headers(payload, "cid-worker-e2e"))])
    # then: the valid one is consumed, its email and SMS sent by the same worker's task
    wait_until(
        lambda: Notification.objects.filter(dedup_key=payload["eventId"], status="sent").count() == 2,
        timeout=30,
        what="the notifications sent by the worker",
    )
    # one dead letter per consumer queue the malformed message reached (each handler has its own DLQ)
    assert DeadLetter.objects.filter(reason__startswith="malformed JSON", handler="notifications").count() == 1
    assert process.poll() is None
    # and the correlation id is on the worker's log lines (consumer and task alike)
    lines = [line for line in log_path.read_text().splitlines() if "cid-worker-e2e" in line]
    assert any("Email sent to u***@example.com" in line for line in lines)
    assert "user@example.com" not in log_path.read_text()
