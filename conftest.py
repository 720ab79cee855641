"""Suite-wide fixtures: the real services must answer, and each test session gets its own names.

Names (exchange, topic, Redis prefix, queues) are unique per session so two test runs on one
machine, or a test and `make run`, never consume each other's messages.
"""

from __future__ import annotations

import os
import socket
import sys
import uuid

import pytest

_SESSION = uuid.uuid4().hex[:8]
os.environ.setdefault("TOURAPP_TESTING", "1")
os.environ.setdefault("EVENTS_EXCHANGE", f"tour_events.test.{_SESSION}")
os.environ.setdefault("EVENTS_QUEUE_PREFIX", f"test.{_SESSION}.")
os.environ.setdefault("KAFKA_TOPIC", f"tour_events.test.{_SESSION}")
os.environ.setdefault("KAFKA_CONSUMER_GROUP", f"tourapp.test.{_SESSION}")
os.environ.setdefault("REDIS_KEY_PREFIX", f"tourapp.test.{_SESSION}")
os.environ.setdefault("CELERY_TASK_DEFAULT_QUEUE", f"celery.test.{_SESSION}")
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")

if "tourapp.settings" in sys.modules:
    # pytest-django reads settings before it imports this file: re-read them so the names above apply.
    import importlib

    from django.conf import settings as _django_settings
    from django.utils.functional import empty

    importlib.reload(sys.modules["tourapp.settings"])
    _django_settings._wrapped = empty

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
