"""Suite-wide fixtures: the real services must answer, and each test session gets its own names.

Per-session names (exchange, topic, Redis prefix, queues) are set in ``tests/settings.py``.
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
