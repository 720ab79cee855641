"""Suite-wide fixtures: the real services must answer, and each test session gets its own names.

Per-session names (exchange, topic, Redis prefix, queues) are set in ``tests/settings.py``; they
are deleted from the brokers at the end of the session (``tests/ops/broker_cleanup.py``). The
per-test broker names (``amqp_env``, ``fresh_topic``) live here because several apps' tests use
them; helpers that are not fixtures live in ``tests/support/``.
"""

from __future__ import annotations

import contextlib
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

_SERVICES = {
    "PostgreSQL": ("127.0.0.1", 5432),
    "Redis": ("127.0.0.1", 6379),
    "RabbitMQ": ("127.0.0.1", 5672),
    "Kafka": ("127.0.0.1", 9092),
}


def pytest_sessionstart(session: pytest.Session) -> None:
    """Fail the whole run, naming the service, when a backing service does not answer."""
    down = []
    for name, (host, port) in _SERVICES.items():
        try:
            socket.create_connection((host, port), timeout=2).close()
        except OSError:
            down.append(f"{name} ({host}:{port})")
    if down:
        raise pytest.UsageError(
            f"backing services not reachable: {', '.join(down)}. "
            "Start them with `scripts/services up` (or run `make test`, which does)."
        )
    from tests.ops.broker_cleanup import session_register, session_run

    session_register(session_run())  # other sessions leave this run's names alone while it lives


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Delete this run's queues, exchanges, topics and consumer groups (and dead runs' leftovers),
    then check none of this run's are left: a leftover fails the run, naming it."""
    from tests.ops.broker_cleanup import session_cleanup, session_run, session_unregister

    run = session_run()
    try:
        report = session_cleanup(run=run)
    finally:
        session_unregister(run)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    for line in report.lines():
        if reporter is not None:
            reporter.write_line(line, red=bool(report.left), yellow=not report.left and bool(report.problems))
        else:
            print(line)
    if report.left and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session", autouse=True)
def _flush_retries_a_deadlock() -> Iterator[None]:
    """See ``tests/support/flush.py``: the flush between transactional tests can deadlock with the
    processes an e2e module keeps running."""
    from tests.support.flush import flush_retrying_deadlocks

    with flush_retrying_deadlocks():
        yield


@pytest.fixture(scope="session")
def kafka_topic() -> str:
    """The session's Kafka topic (3 partitions) and its DLQ topic, created once."""
    from django.conf import settings

    from tests.support.kafka import kafka_topics_create

    kafka_topics_create(settings.KAFKA_TOPIC, dlq_topic=settings.KAFKA_DLQ_TOPIC)
    return settings.KAFKA_TOPIC


@pytest.fixture
def fresh_topic(settings: Any) -> Iterator[str]:
    """A new 3-partition topic (and its DLQ topic) and consumer group for this test only, deleted afterwards."""
    from tests.support.kafka import kafka_test_topics

    name = f"tour_events.ctest.{uuid.uuid4().hex[:8]}"
    settings.KAFKA_TOPIC = name
    settings.KAFKA_DLQ_TOPIC = f"{name}.dlq"
    settings.KAFKA_CONSUMER_GROUP = f"ctest.{uuid.uuid4().hex[:8]}"
    with kafka_test_topics(name, dlq_topic=settings.KAFKA_DLQ_TOPIC):
        yield name


@pytest.fixture
def amqp_env(settings: Any) -> Iterator[str]:
    """A unique exchange and queue prefix for this test, short retry delays; queues deleted after."""
    from messaging.amqp import events_connection
    from messaging.registry import handlers_all

    token = uuid.uuid4().hex[:8]
    settings.EVENTS_EXCHANGE = f"tour_events.ctest.{token}"
    settings.EVENTS_QUEUE_PREFIX = f"ctest.{token}."
    settings.EVENTS_RETRY_DELAYS = [0.05, 0.1]
    settings.EVENTS_PREFETCH_COUNT = 20
    yield settings.EVENTS_QUEUE_PREFIX
    with events_connection() as connection, contextlib.suppress(Exception):
        channel = connection.channel()
        # Every registered handler's queues, and those of the handlers tests register for a while.
        for handler in sorted({h.name for h in handlers_all()} | {"flaky", "bench"}):
            base = f"{settings.EVENTS_QUEUE_PREFIX}{handler}.tour_events"
            for name in [base, f"{base}.dlq", *[f"{base}.retry.{round(d * 1000)}ms" for d in (0.05, 0.1)]]:
                with contextlib.suppress(Exception):
                    channel.queue_delete(name)
        for exchange in (settings.EVENTS_EXCHANGE, f"{settings.EVENTS_EXCHANGE}.dlx"):
            with contextlib.suppress(Exception):
                channel.exchange_delete(exchange)
