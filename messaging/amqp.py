"""AMQP (RabbitMQ) topology shared by the relay (publisher) and the consumers.

The ``tour_events`` topic exchange is part of the wire contract: durable, type topic.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from kombu import Connection, Exchange


def events_exchange(name: str | None = None) -> Exchange:
    """The events exchange (``name`` defaults to ``settings.EVENTS_EXCHANGE``; benchmarks pass their own)."""
    return Exchange(name or settings.EVENTS_EXCHANGE, type="topic", durable=True)


def events_connection(**options: Any) -> Connection:
    """A new (not yet connected) kombu connection to the events broker."""
    options.setdefault("heartbeat", 30)
    options.setdefault("connect_timeout", 5)
    return Connection(settings.EVENTS_AMQP_URL, **options)
