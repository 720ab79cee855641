"""RabbitMQ transport: kombu consumers on the handlers' queues feeding the shared pipeline.

Guarantee: at-least-once into the inbox. A message is acked only after the inbox transaction
committed (and so after its Celery tasks were handed over on commit), or after a copy was
confirmed by the broker in a retry queue or the DLQ. Invalid messages go straight to the DLQ
with the reason (header ``x-error``); handler failures go through the retry ladder first
(``EVENTS_RETRY_DELAYS``: one retry queue per step, see :mod:`.rabbitmq_topology`).

The queues and their arguments are in :mod:`.rabbitmq_topology`; the loops that host this
consumer (the worker bootstep, the standalone loop) in :mod:`.rabbitmq_worker`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from kombu import Consumer, Message

from messaging.consumers.pipeline import Pipeline, Received, Rejection
from messaging.consumers.rabbitmq_topology import (
    dead_letter_exchange,
    handler_queues,
    queue_name_for,
    retry_queue_names,
    topology_declare,
)
from messaging.dead_letters import dead_letter_record
from messaging.envelope import Event
from messaging.inbox import InboxResult
from messaging.publishers.republish import AmqpRepublisher
from messaging.registry import TRANSPORT_RABBITMQ, Handler

logger = logging.getLogger(__name__)

HEADER_RETRY_COUNT = "x-retry-count"
HEADER_ERROR = "x-error"
HEADER_ORIGINAL_ROUTING_KEY = "x-original-routing-key"


def _body(message: Message) -> bytes:
    body = message.body
    return body if isinstance(body, bytes) else (body or "").encode()


def _received(message: Message) -> Received[Message]:
    headers = dict(message.headers or {})
    props = message.properties or {}
    return Received(
        message=message,
        body=_body(message),
        headers=headers,
        # a message back from a retry queue was re-published under the retry queue's name
        routing_key=headers.get(HEADER_ORIGINAL_ROUTING_KEY) or (message.delivery_info or {}).get("routing_key", ""),
        message_id=props.get("message_id") or "",
        correlation_id=props.get("correlation_id") or str(headers.get("correlationId") or ""),
    )


class _RabbitTransport:
    """The pipeline's outcomes on RabbitMQ: ack, the retry ladder, the DLQ (all confirmed before the ack)."""

    name = TRANSPORT_RABBITMQ
    attempts = 1  # the retry ladder retries, with delays, without holding up the queue
    reraise: tuple[type[BaseException], ...] = ()

    def __init__(self) -> None:
        self.republisher = AmqpRepublisher()

    def done(self, handler: Handler, items: Sequence[Received[Message]], result: InboxResult) -> None:
        for item in items:
            item.message.ack()

    def invalid(self, handler: Handler | None, item: Received[Message], rejection: Rejection) -> None:
        assert handler is not None  # every RabbitMQ queue belongs to one handler
        self._dead_letter(handler, item, rejection)

    def failed(self, handler: Handler, item: Received[Message], event: Event, error: str) -> None:
        message = item.message
        headers: dict[str, Any] = dict(item.headers)
        attempt = int(headers.get(HEADER_RETRY_COUNT) or 0)
        retry_queues = retry_queue_names(handler.name)
        if attempt >= len(retry_queues):
            reason = f"failed after {attempt + 1} attempts: {error}"
            self._dead_letter(handler, item, Rejection.of(event, reason))
            return
        headers.pop("x-death", None)
        headers.update({HEADER_RETRY_COUNT: attempt + 1, "x-last-error": error[:500]})
        headers.setdefault(HEADER_ORIGINAL_ROUTING_KEY, (message.delivery_info or {}).get("routing_key", ""))
        try:
            self.republisher.publish(
                body=item.body,
                exchange="",
                routing_key=retry_queues[attempt],
                headers=headers,
                props=message.properties or {},
            )
        except Exception:
            logger.exception("could not park the message in a retry queue; requeueing it")
            self.republisher.close()
            time.sleep(0.5)  # a broker hiccup: don't spin on the same message
            message.requeue()
            return
        logger.warning(
            "retry %d/%d in %ss: %s", attempt + 1, len(retry_queues), settings.EVENTS_RETRY_DELAYS[attempt], error
        )
        message.ack()

    def _dead_letter(self, handler: Handler, item: Received[Message], rejection: Rejection) -> None:
        message = item.message
        headers = dict(item.headers)
        props = message.properties or {}
        source = queue_name_for(handler.name)
        try:
            dead_letter_record(
                transport=TRANSPORT_RABBITMQ,
                source=source,
                reason=rejection.reason,
                body=item.body,
                headers=headers,
                handler=handler.name,
                routing_key=item.routing_key,
                event_type=rejection.event_type,
                event_id=rejection.event_id,
                correlation_id=rejection.correlation_id,
            )
        except Exception:
            # The broker DLQ copy below still carries the reason; the row is the admin's view.
            logger.exception("could not record the dead letter row")
        reason = rejection.reason[:1000]
        headers.pop("x-death", None)
        headers.update({HEADER_ERROR: reason, "x-death-reason": reason, "x-handler": handler.name})
        headers.setdefault(HEADER_ORIGINAL_ROUTING_KEY, item.routing_key)
        try:
            self.republisher.publish(
                body=item.body,
                exchange=dead_letter_exchange().name,
                routing_key=source,
                headers=headers,
                props=props,
            )
        except Exception:
            logger.exception("could not publish to the DLQ; letting the broker dead-letter it")
            self.republisher.close()
            message.reject(requeue=False)  # x-dead-letter-exchange on the queue still routes it to the DLQ
            return
        message.ack()


class RabbitEventConsumer:
    """Collects messages from the handlers' queues and hands them to the pipeline in batches.

    The kombu callbacks only collect; ``collect_ready`` takes what the broker already sent (up to
    the prefetch) without waiting, and ``flush`` hands each handler's messages to the pipeline as
    one batch (one inbox transaction). A lone message is handled at once: nothing waits for a
    batch to fill.
    """

    def __init__(self, handlers: Sequence[Handler]) -> None:
        self.handlers = list(handlers)
        self.handled = 0
        self.max_batch = max(1, settings.EVENTS_PREFETCH_COUNT)
        self._pending: list[tuple[Handler, Message]] = []
        self._transport = _RabbitTransport()
        self._pipeline = Pipeline(self._transport)

    def kombu_consumers(self, channel: Any) -> list[Consumer]:
        self._pending.clear()  # a new channel: messages of the old one can no longer be acked
        if not self.handlers:
            return []
        topology_declare(channel, self.handlers)
        consumers = []
        for handler in self.handlers:
            main, _dlq, _retries = handler_queues(handler)
            consumers.append(
                Consumer(
                    channel,
                    queues=[main],
                    on_message=partial(self._collect, handler),
                    prefetch_count=settings.EVENTS_PREFETCH_COUNT,
                    no_ack=False,
                )
            )
        return consumers

    def close(self) -> None:
        self._transport.republisher.close()

    def _collect(self, handler: Handler, message: Message) -> None:
        self._pending.append((handler, message))

    def collect_ready(self, connection: Any, *, limit: int | None = None) -> None:
        """Add the messages already received on ``connection`` to the batch, without waiting."""
        limit = self.max_batch if limit is None else min(limit, self.max_batch)
        while self._pending and len(self._pending) < limit:
            before = len(self._pending)
            try:
                connection.drain_events(timeout=0)
            except TimeoutError:
                return
            if len(self._pending) == before:
                return

    def flush(self) -> int:
        """Handle the collected messages (each handler's as one batch); returns how many."""
        pending, self._pending = self._pending, []
        if not pending:
            return 0
        close_old_connections()
        by_handler: dict[str, tuple[Handler, list[Received[Message]]]] = {}
        for handler, message in pending:
            by_handler.setdefault(handler.name, (handler, []))[1].append(_received(message))
        for handler, items in by_handler.values():
            self._pipeline.handle_queue(handler, items)
        self.handled += len(pending)
        return len(pending)
