"""Suite-wide fixtures: the real services must answer, and each test session gets its own names.

Per-session names (exchange, topic, Redis prefix, queues) are set in ``tests/settings.py``; they
are deleted from the brokers at the end of the session (``tests/ops/broker_cleanup.py``).
"""

from __future__ import annotations

import socket

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


@pytest.fixture(scope="session")
def kafka_topic() -> str:
    """The session's Kafka topic (3 partitions) and its DLQ topic, created once."""
    from django.conf import settings
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
    try:
        admin.create_topics([NewTopic(settings.KAFKA_TOPIC, 3, 1), NewTopic(settings.KAFKA_DLQ_TOPIC, 1, 1)])
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()
    return settings.KAFKA_TOPIC
