"""Kafka topics for a test run: create a topic (partitions) and its DLQ topic, delete them after.

Usable without a configured Django (``tests/e2e/harness.py`` is imported by ``bench/``): the
bootstrap servers come from the settings when Django is configured, else from the environment.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def _bootstrap_servers() -> list[str]:
    from django.conf import settings

    if settings.configured:
        return list(settings.KAFKA_BOOTSTRAP_SERVERS)
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092").split(",")


def kafka_topics_create(topic: str, *, partitions: int = 3, dlq_topic: str | None = None) -> None:
    """Create ``topic`` with ``partitions`` partitions and ``dlq_topic`` (1 partition), those missing."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    wanted = [NewTopic(topic, partitions, 1)] + ([NewTopic(dlq_topic, 1, 1)] if dlq_topic else [])
    admin = KafkaAdminClient(bootstrap_servers=_bootstrap_servers())
    try:
        for new in wanted:  # one by one: an existing first topic must not skip the second
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([new])
    finally:
        admin.close()


def kafka_topics_delete(*topics: str) -> None:
    """Delete ``topics``; a topic that is already gone is no error."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=_bootstrap_servers())
    try:
        existing = set(admin.list_topics())
        doomed = [topic for topic in topics if topic in existing]
        if doomed:
            admin.delete_topics(doomed)
    finally:
        admin.close()


@contextlib.contextmanager
def kafka_test_topics(topic: str, *, partitions: int = 3, dlq_topic: str | None = None) -> Iterator[str]:
    """``topic`` (and ``dlq_topic``) for the ``with`` block only: created on entry, deleted on exit."""
    kafka_topics_create(topic, partitions=partitions, dlq_topic=dlq_topic)
    try:
        yield topic
    finally:
        with contextlib.suppress(Exception):  # a broker stopped by the test must not hide its outcome
            kafka_topics_delete(topic, *([dlq_topic] if dlq_topic else []))
