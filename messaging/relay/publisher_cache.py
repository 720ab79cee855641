"""The relay's publishers: one per destination per process (a forked worker builds its own).

A publisher keeps its broker connection between batches; the cache is keyed by process id so a
child of Celery's prefork pool never reuses the connection it inherited from its parent.
"""

from __future__ import annotations

import os

from messaging.models import OutboxDelivery
from messaging.publishers.base import Publisher
from messaging.publishers.kafka import KafkaPublisher
from messaging.publishers.rabbitmq import AmqpPublisher

_publishers: dict[str, tuple[int, Publisher]] = {}


def publisher_for(destination: str) -> Publisher:
    """A new publisher for ``destination``."""
    if destination == OutboxDelivery.Destination.RABBITMQ:
        return AmqpPublisher()
    if destination == OutboxDelivery.Destination.KAFKA:
        return KafkaPublisher()
    raise ValueError(f"unknown outbox destination {destination!r}")


def outbox_publisher(destination: str) -> Publisher:
    """This process's publisher for ``destination``, built on first use."""
    pid = os.getpid()
    cached = _publishers.get(destination)
    if cached is None or cached[0] != pid:
        cached = (pid, publisher_for(destination))
        _publishers[destination] = cached
    return cached[1]


def outbox_publishers_close() -> None:
    """Close this process's publisher connections (worker shutdown, tests, benchmarks)."""
    for pid, publisher in list(_publishers.values()):
        if pid == os.getpid():
            publisher.close()
    _publishers.clear()
