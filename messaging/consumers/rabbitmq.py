"""RabbitMQ event consumer: one durable queue per handler routed to RabbitMQ.

Topology per handler ``h`` (``Q = <EVENTS_QUEUE_PREFIX><h>.tour_events``):

* ``Q`` bound to the ``tour_events`` topic exchange with ``tour.booked.*`` / ``tour.cancelled.*``
  (the handler's event types), ``x-dead-letter-exchange`` = ``<exchange>.dlx`` so a broker-side
  dead-letter (quorum delivery limit, ``reject(requeue=False)``) also lands in the DLQ;
* ``Q.retry.<ms>ms``: one queue per step of ``EVENTS_RETRY_DELAYS`` with a queue TTL that
  dead-letters back to ``Q`` (no head-of-line blocking between different delays);
* ``Q.dlq`` bound to ``<exchange>.dlx`` with routing key ``Q``.

Queue arguments are explicit (``x-queue-type``; for quorum ``x-delivery-limit``,
``x-dead-letter-strategy=at-least-once`` which needs ``x-overflow=reject-publish``) so RabbitMQ
3.x and 4.x (which caps quorum redeliveries at 20 by default) behave alike.

Guarantee: at-least-once into the inbox. A message is acked only after the inbox transaction
committed (and so after its Celery tasks were handed over on commit), or after a copy was
confirmed by the broker in a retry queue or the DLQ. Invalid messages go straight to the DLQ
with the reason (header ``x-error``); handler failures go through the retry ladder first.

Hosted in the Celery worker by :class:`EventConsumerStep`; :func:`rabbitmq_consume` runs the
same consumer standalone (tests, scripts).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from celery import bootsteps
from django.conf import settings
from django.db import close_old_connections, connections
from kombu import Consumer, Exchange, Message, Producer, Queue, binding
from kombu.mixins import ConsumerMixin

from messaging.amqp import events_connection, events_exchange
from messaging.dead_letters import dead_letter_record
from messaging.envelope import Event, InvalidMessage, event_parse
from messaging.events import binding_patterns_for
from messaging.inbox import inbox_process
from messaging.registry import TRANSPORT_RABBITMQ, Handler, handler_get, handlers_for_transport
from tourapp.correlation import correlation_scope

logger = logging.getLogger(__name__)

HEADER_RETRY_COUNT = "x-retry-count"
HEADER_ERROR = "x-error"
HEADER_ORIGINAL_ROUTING_KEY = "x-original-routing-key"


def queue_name_for(handler_name: str) -> str:
    return f"{settings.EVENTS_QUEUE_PREFIX}{handler_name}.tour_events"


def dead_letter_exchange() -> Exchange:
    return Exchange(f"{settings.EVENTS_EXCHANGE}.dlx", type="direct", durable=True)


def _type_arguments() -> dict[str, Any]:
    if settings.EVENTS_QUORUM_QUEUES:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": settings.EVENTS_DELIVERY_LIMIT,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
    return {"x-queue-type": "classic"}


def retry_queue_names(handler_name: str) -> list[str]:
    main = queue_name_for(handler_name)
    return [f"{main}.retry.{round(delay * 1000)}ms" for delay in settings.EVENTS_RETRY_DELAYS]


def handler_queues(handler: Handler) -> tuple[Queue, Queue, list[Queue]]:
    """(main queue, DLQ, retry queues) for one handler, with every argument explicit."""
    main = queue_name_for(handler.name)
    dlx = dead_letter_exchange()
    main_queue = Queue(
        main,
        bindings=[
            binding(events_exchange(), routing_key=pattern)
            for pattern in binding_patterns_for(*sorted(handler.event_types))
        ],
        durable=True,
        queue_arguments={**_type_arguments(), "x-dead-letter-exchange": dlx.name, "x-dead-letter-routing-key": main},
    )
    dlq = Queue(f"{main}.dlq", exchange=dlx, routing_key=main, durable=True, queue_arguments=_type_arguments())
    retries = [
        Queue(
            name,
            durable=True,
            queue_arguments={
                **_type_arguments(),
                "x-message-ttl": max(round(delay * 1000), 1),
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": main,
            },
        )
        for name, delay in zip(retry_queue_names(handler.name), settings.EVENTS_RETRY_DELAYS, strict=True)
    ]
    return main_queue, dlq, retries


def topology_declare(channel: Any, handlers: Sequence[Handler]) -> None:
    """Declare exchanges, queues and bindings (idempotent; same arguments every time)."""
    events_exchange()(channel).declare()
    dead_letter_exchange()(channel).declare()
    for handler in handlers:
        main, dlq, retries = handler_queues(handler)
        for queue in (main, dlq, *retries):
            queue(channel).declare()


def rabbitmq_topology_setup(*, handler_names: Sequence[str] | None = None) -> list[str]:
    """Declare the topology for the selected (default: routed) handlers; returns the main queue names.

    The worker does this when it starts; call it before publishing when no consumer has run yet
    (a topic exchange drops messages that match no queue).
    """
    handlers = _selected_handlers(handler_names)
    with events_connection() as connection:
        topology_declare(connection.default_channel, handlers)
    return [queue_name_for(handler.name) for handler in handlers]


class _Republisher:
    """A separate, confirmed publishing connection for retry / DLQ copies and re-drives."""

    def __init__(self) -> None:
        self._connection: Any = None
        self._producer: Producer | None = None

    def publish(self, *, body: bytes, exchange: str, routing_key: str, headers: dict[str, Any], props: dict) -> None:
        if self._producer is None:
            self._connection = events_connection(transport_options={"confirm_publish": True})
            self._producer = Producer(self._connection)
        producer = self._producer
        assert self._connection is not None
        publish = self._connection.ensure(producer, producer.publish, max_retries=3)
        publish(
            body,
            exchange=exchange,
            routing_key=routing_key,
            headers=headers,
            content_type=props.get("content_type") or "application/json",
            content_encoding=props.get("content_encoding") or "utf-8",
            delivery_mode=2,
            message_id=props.get("message_id"),
            correlation_id=props.get("correlation_id"),
            retry=True,
        )

    def close(self) -> None:
        if self._connection is not None:
            self._connection.release()
        self._connection = self._producer = None


def _body(message: Message) -> bytes:
    body = message.body
    return body if isinstance(body, bytes) else (body or "").encode()


def republish_to_queue(*, queue_name: str, body: bytes, headers: Mapping[str, Any]) -> None:
    """Publish ``body`` straight into ``queue_name`` (default exchange); used to re-drive."""
    clean = {key: value for key, value in headers.items() if not key.startswith("x-")}
    republisher = _Republisher()
    try:
        republisher.publish(body=body, exchange="", routing_key=queue_name, headers=clean, props={})
    finally:
        republisher.close()


class RabbitEventConsumer:
    """Validates, deduplicates and applies messages from the handlers' queues (see module doc).

    Messages are handled in batches: the kombu callbacks only collect them; ``collect_ready``
    takes what the broker already sent (up to the prefetch) without waiting, and ``flush``
    applies each handler's batch in ONE inbox transaction, then acks every message of it. Under
    load that is one transaction per batch instead of one per message; a lone message is handled
    at once (nothing waits for a batch to fill). If a batch fails, its messages are handled one
    by one, so only the culprit goes through the retry ladder.
    """

    def __init__(self, handlers: Sequence[Handler]) -> None:
        self.handlers = list(handlers)
        self.handled = 0
        self.max_batch = max(1, settings.EVENTS_PREFETCH_COUNT)
        self._pending: list[tuple[Handler, Message]] = []
        self._republisher = _Republisher()

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
        self._republisher.close()

    def _collect(self, handler: Handler, message: Message) -> None:
        self._pending.append((handler, message))

    # ------------------------------------------------------------------ batches
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
        by_handler: dict[str, tuple[Handler, list[Message]]] = {}
        for handler, message in pending:
            by_handler.setdefault(handler.name, (handler, []))[1].append(message)
        for handler, messages in by_handler.values():
            self._handle_batch(handler, messages)
        self.handled += len(pending)
        return len(pending)

    def _handle_batch(self, handler: Handler, messages: list[Message]) -> None:
        parsed = [(message, self._parse(handler, message)) for message in messages]
        valid = [(message, event) for message, event in parsed if event is not None]
        if len(valid) == 1:
            self._apply_one(handler, *valid[0])
            return
        if not valid:
            return
        try:
            inbox_process(handler=handler, events=[event for _, event in valid], transport=TRANSPORT_RABBITMQ)
        except Exception:
            logger.warning("batch of %d failed for %s; handling its messages one by one", len(valid), handler.name)
            for message, event in valid:
                self._apply_one(handler, message, event)
            return
        for message, _ in valid:
            message.ack()

    # ------------------------------------------------------------------ per message
    def _parse(self, handler: Handler, message: Message) -> Event | None:
        """The message's event, or None when it was invalid (then it is dead-lettered, with the reason)."""
        headers = dict(message.headers or {})
        props = message.properties or {}
        routing_key = (message.delivery_info or {}).get("routing_key", "")
        try:
            event = event_parse(
                body=_body(message),
                headers=headers,
                routing_key=headers.get(HEADER_ORIGINAL_ROUTING_KEY) or routing_key,
                message_id=props.get("message_id") or "",
                correlation_id=props.get("correlation_id") or "",
            )
            if not handler.accepts(event.event_type):
                raise InvalidMessage(f"handler {handler.name} does not handle {event.event_type}")
            missing = event.missing(handler.required_fields)
            if missing:
                raise InvalidMessage(f"missing fields for handler {handler.name}: {', '.join(missing)}")
        except InvalidMessage as exc:
            with correlation_scope(props.get("correlation_id") or headers.get("correlationId")):
                self._dead_letter(handler, message, exc.reason, event_type=exc.event_type, event_id=exc.event_id)
            return None
        return event

    def _apply_one(self, handler: Handler, message: Message, event: Event) -> None:
        with correlation_scope(event.correlation_id, event_id=event.event_id, booking_id=event.booking_id):
            try:
                inbox_process(handler=handler, events=[event], transport=TRANSPORT_RABBITMQ)
            except Exception as exc:
                logger.exception("handler %s failed on %s", handler.name, event.dedup_key)
                self._retry_or_dead_letter(handler, message, event, f"{type(exc).__name__}: {exc}")
                return
            message.ack()

    def _retry_or_dead_letter(self, handler: Handler, message: Message, event: Event, error: str) -> None:
        headers: dict[str, Any] = dict(message.headers or {})
        attempt = int(headers.get(HEADER_RETRY_COUNT) or 0)
        retry_queues = retry_queue_names(handler.name)
        if attempt >= len(retry_queues):
            self._dead_letter(
                handler,
                message,
                f"failed after {attempt + 1} attempts: {error}",
                event_type=event.event_type,
                event_id=str(event.event_id or ""),
            )
            return
        headers.pop("x-death", None)
        headers.update({HEADER_RETRY_COUNT: attempt + 1, "x-last-error": error[:500]})
        headers.setdefault(HEADER_ORIGINAL_ROUTING_KEY, (message.delivery_info or {}).get("routing_key", ""))
        try:
            self._republisher.publish(
                body=_body(message),
                exchange="",
                routing_key=retry_queues[attempt],
                headers=headers,
                props=message.properties or {},
            )
        except Exception:
            logger.exception("could not park the message in a retry queue; requeueing it")
            self._republisher.close()
            time.sleep(0.5)  # a broker hiccup: don't spin on the same message
            message.requeue()
            return
        logger.warning(
            "retry %d/%d in %ss: %s", attempt + 1, len(retry_queues), settings.EVENTS_RETRY_DELAYS[attempt], error
        )
        message.ack()

    def _dead_letter(self, handler: Handler, message: Message, reason: str, *, event_type: str, event_id: str) -> None:
        headers = dict(message.headers or {})
        props = message.properties or {}
        source = queue_name_for(handler.name)
        routing_key = headers.get(HEADER_ORIGINAL_ROUTING_KEY) or (message.delivery_info or {}).get("routing_key", "")
        try:
            dead_letter_record(
                transport=TRANSPORT_RABBITMQ,
                source=source,
                reason=reason,
                body=_body(message),
                headers=headers,
                handler=handler.name,
                routing_key=routing_key,
                event_type=event_type,
                event_id=event_id,
                correlation_id=props.get("correlation_id") or str(headers.get("correlationId") or ""),
            )
        except Exception:
            # The broker DLQ copy below still carries the reason; the row is the admin's view.
            logger.exception("could not record the dead letter row")
        headers.pop("x-death", None)
        headers.update({HEADER_ERROR: reason[:1000], "x-death-reason": reason[:1000], "x-handler": handler.name})
        headers.setdefault(HEADER_ORIGINAL_ROUTING_KEY, routing_key)
        try:
            self._republisher.publish(
                body=_body(message),
                exchange=dead_letter_exchange().name,
                routing_key=source,
                headers=headers,
                props=props,
            )
        except Exception:
            logger.exception("could not publish to the DLQ; letting the broker dead-letter it")
            self._republisher.close()
            message.reject(requeue=False)  # x-dead-letter-exchange on the queue still routes it to the DLQ
            return
        message.ack()


def _selected_handlers(handler_names: Sequence[str] | None) -> list[Handler]:
    if handler_names:
        return [handler_get(name) for name in handler_names]
    return handlers_for_transport(TRANSPORT_RABBITMQ)


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
    consumer = RabbitEventConsumer(_selected_handlers(handler_names))
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
