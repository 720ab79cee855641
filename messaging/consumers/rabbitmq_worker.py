"""Where the RabbitMQ consumer runs: in the Celery worker (a bootstep) or standalone (tests, scripts).

Both loops do the same between waits for the broker: take what it already sent, then hand the
batch to :class:`~messaging.consumers.rabbitmq.RabbitEventConsumer`. The worker's loop also
reconnects with backoff after a connection loss (kombu's ``ConsumerMixin``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from celery import bootsteps
from django.db import connections
from kombu import Consumer
from kombu.mixins import ConsumerMixin

from messaging.amqp import events_connection
from messaging.consumers.rabbitmq import RabbitEventConsumer
from messaging.consumers.rabbitmq_topology import handlers_selected, queue_name_for
from messaging.registry import TRANSPORT_RABBITMQ, handlers_for_transport

logger = logging.getLogger(__name__)


def rabbitmq_consume(
    *,
    handler_names: Sequence[str] | None = None,
    max_messages: int | None = None,
    idle_timeout: float = 1.0,
    timeout: float = 60.0,
) -> int:
    """Run the consumer in this thread until ``max_messages`` were handled, or idle, or ``timeout``.

    Returns the number of messages handled (applied, duplicate or dead-lettered).
    """
    consumer = RabbitEventConsumer(handlers_selected(handler_names))
    deadline = time.monotonic() + timeout
    with events_connection() as connection:
        channel = connection.channel()
        kombu_consumers = consumer.kombu_consumers(channel)
        for kombu_consumer in kombu_consumers:
            kombu_consumer.consume()
        last_activity = time.monotonic()
        try:
            while time.monotonic() < deadline:
                if max_messages is not None and consumer.handled >= max_messages:
                    break
                with contextlib.suppress(TimeoutError):
                    connection.drain_events(timeout=min(0.2, idle_timeout))
                left = None if max_messages is None else max_messages - consumer.handled
                consumer.collect_ready(connection, limit=left)
                if consumer.flush():
                    last_activity = time.monotonic()
                elif time.monotonic() - last_activity >= idle_timeout:
                    break
        finally:
            for kombu_consumer in kombu_consumers:
                with contextlib.suppress(Exception):  # the connection may be gone already
                    kombu_consumer.cancel()
            consumer.close()
    return consumer.handled


class _EventConsumerLoop(ConsumerMixin):
    """kombu's consumer loop (reconnects with backoff after a connection loss) around the batches."""

    def __init__(self, consumer: RabbitEventConsumer) -> None:
        self.connection = events_connection()
        self.event_consumer = consumer
        self._consuming: Any = None

    def get_consumers(self, _consumer_factory: Any, channel: Any) -> list[Consumer]:
        return self.event_consumer.kombu_consumers(channel)

    def on_consume_ready(self, connection: Any, channel: Any, consumers: Any, **kwargs: Any) -> None:
        self._consuming = connection

    def on_iteration(self) -> None:
        # Runs before each wait for the broker: apply what the last wait delivered (and anything
        # else already received), so a message never waits for a batch to fill.
        if self._consuming is not None:
            self.event_consumer.collect_ready(self._consuming)
        self.event_consumer.flush()

    def on_connection_error(self, exc: Exception, interval: float) -> None:
        logger.warning("event consumer: broker connection lost (%s); retrying in %.1fs", exc, interval)


class EventConsumerStep(bootsteps.StartStopStep):
    """Hosts :class:`RabbitEventConsumer` in ``celery -A tourapp worker`` (registered in tourapp.celery).

    It runs on a thread of the worker's main process with its own connection to
    ``EVENTS_AMQP_URL``, not in Celery's event loop: handling an event waits on the database, and
    that wait must not hold up the dispatch of Celery tasks (the notification sends) to the pool.
    """

    label = "event consumer"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._loop: _EventConsumerLoop | None = None
        self._thread: threading.Thread | None = None

    def start(self, parent: Any) -> None:
        handlers = handlers_for_transport(TRANSPORT_RABBITMQ)
        if not handlers:
            return
        logger.info(
            "consuming events for %s from %s",
            [h.name for h in handlers],
            [queue_name_for(h.name) for h in handlers],
        )
        self._loop = _EventConsumerLoop(RabbitEventConsumer(handlers))
        self._thread = threading.Thread(target=self._run, name="event-consumer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        assert self._loop is not None
        try:
            self._loop.run()
        finally:
            self._loop.event_consumer.close()
            connections.close_all()  # this thread's

    def stop(self, parent: Any) -> None:
        if self._loop is None or self._thread is None:
            return
        self._loop.should_stop = True
        self._thread.join(timeout=10)
