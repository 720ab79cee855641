"""Publishers: hand one batch of outbox messages to a broker and report, per message, what it confirmed.

A publisher never touches the database. It returns a ``PublishOutcome``:

- ``delivered``: the broker took responsibility for these (RabbitMQ ``basic.ack`` without a
  ``basic.return``; Kafka future succeeded with ``acks=all``);
- ``failed``: the broker refused these (``basic.nack``, ``basic.return`` = unroutable, a
  non-retriable Kafka error). The relay counts an attempt for each;
- ``unavailable``: set when the broker could not be reached or did not answer in time. Every
  message neither delivered nor failed is then *undecided*: the relay retries it later without
  counting an attempt, so an outage never burns attempts.

Only transport conditions are "unavailable". A programming error (an ``AssertionError`` from a
send, anything unexpected) is a failure that counts attempts, so it ends in ``dead`` instead of
being retried forever; kafka-python's one ``AssertionError`` that means a closed producer is
recognised by :func:`is_producer_closed`.

Both publishers keep their connection between batches (one per worker process) and drop it on
any transport error; the next batch reconnects.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from amqp import Message, spec
from amqp.exceptions import AMQPError
from amqp.method_framing import frame_writer
from amqp.serialization import dumps
from django.conf import settings
from kombu.exceptions import KombuError

from messaging.amqp import events_connection, events_exchange

logger = logging.getLogger(__name__)

AMQP_CONFIRM_TIMEOUT_SECONDS = 15.0
# What a lost or refused RabbitMQ connection raises (the batch is then undecided, never failed).
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (OSError, AMQPError, KombuError)


class OutboundMessage(NamedTuple):
    """One claimed delivery, ready for the wire (see the wire contract in ARCHITECTURE.md).

    A named tuple: the relay builds one per row claimed, and that is half the cost of a frozen
    dataclass (whose ``__init__`` sets each field through ``object.__setattr__``)."""

    delivery_id: int
    event_id: str
    event_type: str
    routing_key: str
    message_key: str
    body: bytes
    headers: dict[str, str]
    correlation_id: str


@dataclass(slots=True)
class PublishOutcome:
    delivered: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    unavailable: str | None = None


class Publisher(Protocol):
    """``publish`` = ``complete(begin(...))``. ``begin`` hands a batch to the broker client and
    returns a handle without waiting for the broker; ``complete`` waits for that batch's outcome.
    The relay begins the next batches before completing batch *n*, so the wire never idles between batches."""

    def publish(self, messages: list[OutboundMessage]) -> PublishOutcome: ...

    def begin(self, messages: list[OutboundMessage]) -> object: ...

    def complete(self, handle: object) -> PublishOutcome: ...

    def close(self) -> None: ...


@dataclass(slots=True)
class _AmqpInFlight:
    messages: list[OutboundMessage]
    generation: int = -1
    unconfirmed: int = 0
    outcome: PublishOutcome = field(default_factory=PublishOutcome)
    may_retry: bool = False  # first batch on a reused, otherwise idle connection


def amqp_message(message: OutboundMessage) -> Message:
    """The AMQP message of the wire contract (persistent JSON, ids and headers as properties)."""
    return Message(
        message.body,
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=2,
        message_id=message.event_id,
        correlation_id=message.correlation_id,
        type=message.event_type,
        application_headers=message.headers,
    )


class _FrameBuffer:
    """Stands in for py-amqp's transport under ``frame_writer``: collects a batch's frames in memory."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes | memoryview) -> None:
        self.chunks.append(bytes(data))  # copy: frame_writer reuses its buffer for the next frame

    def take(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


class AmqpPublisher:
    """RabbitMQ: persistent, ``mandatory`` messages with publisher confirms pipelined per batch.

    ``begin`` writes the whole batch; ``complete`` collects its confirms (``basic.ack`` /
    ``basic.nack``, honouring ``multiple``), so a batch costs one round trip, not one per message,
    and the next batch is written while this one's confirms travel. RabbitMQ acks an unroutable
    message too, after returning it: a ``basic.return`` marks that message failed. The exchange is
    declared once per connection. Messages unconfirmed when the connection is lost are undecided.

    The batch's ``basic.publish`` frames are encoded by py-amqp's own ``frame_writer`` into memory
    and sent with one socket write (bounded by the confirm timeout, so a broker that stops
    reading - a memory or disk alarm - makes the batch undecided instead of hanging the relay).
    ``Channel.basic_publish`` costs a send and a non-blocking read per message (it polls for
    ``connection.blocked``); this costs a send per batch.
    """

    def __init__(self, *, exchange: str | None = None, confirm_timeout: float = AMQP_CONFIRM_TIMEOUT_SECONDS):
        self.exchange = exchange or settings.EVENTS_EXCHANGE
        self.confirm_timeout = confirm_timeout
        # py-amqp objects (kombu's types do not describe confirm mode or the channel's events)
        self._conn: Any = None
        self._channel: Any = None
        self._generation = 0
        self._next_tag = 1
        self._by_tag: dict[int, tuple[_AmqpInFlight, int]] = {}  # delivery tag -> (batch, delivery id)
        self._by_message_id: dict[str, tuple[_AmqpInFlight, int]] = {}  # message_id (event id) -> same
        self._frames = _FrameBuffer()
        self._write_frame: Any = None
        self._publish_args: dict[str, bytes] = {}  # routing key -> encoded basic.publish arguments

    # -- connection -------------------------------------------------------------------------
    def _connect(self) -> None:
        # Heartbeats need a background tick the relay does not have; a dead idle connection is
        # noticed on the next batch instead, which is then retried once on a fresh connection.
        conn = events_connection(heartbeat=0)
        conn.ensure_connection(max_retries=0)
        channel: Any = conn.channel()  # py-amqp's Channel: confirm mode and its events
        events_exchange(self.exchange)(channel).declare()
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        channel.events["basic_return"].add(self._on_return)
        self._conn, self._channel, self._next_tag = conn, channel, 1
        self._write_frame = frame_writer(conn.connection, self._frames)

    def close(self) -> None:
        conn, self._conn, self._channel = self._conn, None, None
        self._generation += 1
        self._by_tag.clear()
        self._by_message_id.clear()
        if conn is not None:
            try:
                conn.release()
            except Exception:  # a broken connection fails to close in many ways; it is gone anyway
                logger.debug("amqp publisher: error while closing", exc_info=True)

    # -- confirm callbacks ------------------------------------------------------------------
    def _settle(self, delivery_tag: int, multiple: bool, *, acked: bool) -> None:
        if multiple:
            tags = []
            for tag in self._by_tag:  # insertion order = tag order
                if tag > delivery_tag:
                    break
                tags.append(tag)
        else:
            tags = [delivery_tag]
        for tag in tags:
            owner = self._by_tag.pop(tag, None)
            if owner is None:
                continue
            batch, delivery_id = owner
            batch.unconfirmed -= 1
            if not acked:
                batch.outcome.failed[delivery_id] = "rabbitmq: basic.nack (broker refused the message)"
            elif delivery_id not in batch.outcome.failed:  # a return came first: unroutable
                batch.outcome.delivered.append(delivery_id)

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, acked=True)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, acked=False)

    def _on_return(self, exc: Exception, exchange: str, routing_key: str, message: Message) -> None:
        owner = self._by_message_id.get(message.properties.get("message_id", ""))
        if owner is not None:
            batch, delivery_id = owner
            batch.outcome.failed[delivery_id] = (
                f"rabbitmq: returned unroutable (no queue bound for {routing_key!r} on {exchange!r}): {exc}"
            )

    # -- publishing -------------------------------------------------------------------------
    def publish(self, messages: list[OutboundMessage]) -> PublishOutcome:
        return self.complete(self.begin(messages))

    def begin(self, messages: list[OutboundMessage]) -> _AmqpInFlight:
        batch = _AmqpInFlight(messages=messages, may_retry=self._conn is not None and not self._by_tag)
        try:
            if self._conn is None:
                self._connect()
            batch.generation = self._generation
            channel_id, write_frame = self._channel.channel_id, self._write_frame
            self._frames.chunks.clear()  # nothing left over from a batch that raised while encoding
            for message in messages:
                self._by_message_id[message.event_id] = (batch, message.delivery_id)
                write_frame(1, channel_id, spec.Basic.Publish, self._args(message.routing_key), amqp_message(message))
                self._by_tag[self._next_tag] = (batch, message.delivery_id)
                self._next_tag += 1
                batch.unconfirmed += 1
            transport = self._conn.connection.transport
            with transport.having_timeout(self.confirm_timeout):
                transport.write(self._frames.take())
        except _TRANSPORT_ERRORS as exc:
            self._lost(batch, exc)
        return batch

    def _args(self, routing_key: str) -> bytes:
        args = self._publish_args.get(routing_key)
        if args is None:  # ticket, exchange, routing key, mandatory, immediate
            args = self._publish_args[routing_key] = dumps("Bssbb", (0, self.exchange, routing_key, True, False))
        return args

    def complete(self, handle: object) -> PublishOutcome:
        assert isinstance(handle, _AmqpInFlight)
        batch = handle
        deadline = time.monotonic() + self.confirm_timeout
        try:
            while batch.unconfirmed and batch.generation == self._generation and not batch.outcome.unavailable:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no publisher confirm within {self.confirm_timeout:.0f}s")
                self._conn.connection.drain_events(timeout=remaining)
        except _TRANSPORT_ERRORS as exc:  # TimeoutError is an OSError
            self._lost(batch, exc)
        if batch.unconfirmed and not batch.outcome.unavailable:
            batch.outcome.unavailable = "rabbitmq unavailable: connection lost before the confirms"
        if batch.outcome.unavailable and batch.may_retry and not batch.outcome.delivered:
            # The first batch after a pause met a connection the broker had dropped: retry once, fresh.
            return self.publish(batch.messages)
        for message in batch.messages:
            self._by_message_id.pop(message.event_id, None)
        return batch.outcome

    def _lost(self, batch: _AmqpInFlight, exc: BaseException) -> None:
        batch.outcome.unavailable = f"rabbitmq unavailable: {type(exc).__name__}: {exc}"
        self.close()


# kafka-python's send() asserts this; the batch sender raises the same (see _batch_sender).
KAFKA_PRODUCER_CLOSED = "KafkaProducer already closed!"


class ProducerClosed(Exception):
    """The Kafka producer was closed under the batch: the broker was not asked, nothing is decided."""


def is_producer_closed(exc: BaseException) -> bool:
    """True for kafka-python's "producer already closed" ``AssertionError`` (and ours)."""
    return isinstance(exc, ProducerClosed) or (isinstance(exc, AssertionError) and str(exc) == KAFKA_PRODUCER_CLOSED)


@dataclass(slots=True)
class _KafkaInFlight:
    generation: int
    futures: list = field(default_factory=list)  # (delivery id, FutureRecordMetadata)
    outcome: PublishOutcome = field(default_factory=PublishOutcome)


class KafkaPublisher:
    """Kafka: idempotent producer, ``acks=all``; a row is delivered only when its future succeeded.

    Idempotence in kafka-python 2.2 forces ``max_in_flight_requests_per_connection=1``, so records
    of one key keep their order even across the producer's internal retries. ``begin`` only appends
    a batch to the producer's buffer; ``complete`` waits for that batch's futures, so the next
    batch is already being sent meanwhile. When the broker is unreachable the producer is closed
    (its buffer dropped); batches begun on it come back undecided and are retried later.
    """

    def __init__(self, *, topic: str | None = None, complete_timeout: float = 20.0):
        self.topic = topic or settings.KAFKA_TOPIC
        self.complete_timeout = complete_timeout
        self._producer = None
        self._generation = 0

    def _connect(self):
        from kafka import KafkaProducer

        self._producer = KafkaProducer(**kafka_producer_config())
        return self._producer

    def close(self) -> None:
        producer, self._producer = self._producer, None
        self._generation += 1
        if producer is not None:
            try:
                # timeout=0 drops records still buffered: they are undecided and will be re-sent.
                producer.close(timeout=0)
            except Exception:  # a broken producer fails to close in many ways; it is gone anyway
                logger.debug("kafka publisher: error while closing", exc_info=True)

    def publish(self, messages: list[OutboundMessage]) -> PublishOutcome:
        return self.complete(self.begin(messages))

    def begin(self, messages: list[OutboundMessage]) -> _KafkaInFlight:
        from kafka.errors import KafkaError

        inflight = _KafkaInFlight(generation=self._generation)
        batch_end = None
        try:
            producer = self._producer or self._connect()
            send, batch_end = _batch_sender(producer, self.topic)
            for message in messages:
                try:
                    future = send(
                        message.message_key.encode(),
                        message.body,
                        [(name, value.encode()) for name, value in message.headers.items()],
                    )
                except KafkaError as exc:
                    if _is_transient(exc):
                        raise
                    inflight.outcome.failed[message.delivery_id] = f"kafka: {type(exc).__name__}: {exc}"
                    continue
                except AssertionError as exc:
                    if is_producer_closed(exc):
                        raise ProducerClosed(str(exc)) from exc
                    # a programming error about this record: it counts an attempt like a refusal
                    inflight.outcome.failed[message.delivery_id] = f"kafka: AssertionError: {exc}"
                    continue
                inflight.futures.append((message.delivery_id, future))
        except (KafkaError, OSError, ProducerClosed) as exc:
            # Anything else raised here (before any record was handed over) reaches the relay,
            # which counts an attempt for the whole batch.
            inflight.outcome.unavailable = f"kafka unavailable: {type(exc).__name__}: {exc}"
        if batch_end is not None and inflight.futures:
            batch_end()
        return inflight

    def complete(self, handle: object) -> PublishOutcome:
        assert isinstance(handle, _KafkaInFlight)
        outcome = handle.outcome
        current = handle.generation == self._generation
        if current and outcome.unavailable is None:
            deadline = time.monotonic() + self.complete_timeout
            for _, future in handle.futures:
                if not future.is_done:
                    try:
                        future.get(timeout=max(0.0, deadline - time.monotonic()))
                    except Exception:  # classified below from the future itself; a wait timeout leaves it undone
                        if not future.is_done:
                            break
        for delivery_id, future in handle.futures:
            if future.succeeded():
                outcome.delivered.append(delivery_id)
            elif not current or not future.is_done:
                outcome.unavailable = outcome.unavailable or "kafka unavailable: no acknowledgement in time"
            elif _is_transient(future.exception):
                exc = future.exception
                outcome.unavailable = outcome.unavailable or f"kafka unavailable: {type(exc).__name__}: {exc}"
            else:
                exc = future.exception
                outcome.failed[delivery_id] = f"kafka: {type(exc).__name__}: {exc}"
        if outcome.unavailable and current:
            self.close()
        return outcome


# kafka-python releases whose producer internals ``_batch_sender`` was written and tested against
# (messaging/tests: the relay against the real broker). Any other release uses ``send()``.
_BATCH_SENDER_VERSIONS = ("2.2.15",)


def _batch_sender(
    producer: Any, topic: str
) -> tuple[Callable[[bytes, bytes, list[tuple[str, bytes]]], Any], Callable[[], None]]:
    """``(send, batch_end)`` for one batch of records to ``topic``: ``send(key, value, headers) ->
    future`` per record, then ``batch_end()`` once the whole batch is handed over.

    Why: ``KafkaProducer.send()``'s Python time per record, under one interpreter lock with the
    relay's database threads, is what limits the relay, and more than half of it re-checks, for
    every record, what holds for the whole batch: the topic name, a metadata wait with its timers,
    the producer not being closed, the header types. For the releases in ``_BATCH_SENDER_VERSIONS``
    this does those once per batch, then per record exactly what ``send()`` does next: the
    configured partitioner on the same partition lists, the same record size check
    (``MessageSizeTooLargeError``), and the append to the producer's own accumulator, which returns
    the same future. Its sender thread, retries, idempotence sequence numbers and ``acks`` are
    untouched (the cost per record, measured: docs/performance.md). Its ``batch_end`` wakes the
    sender thread at once instead of after ``linger_ms``. Other releases get plain ``send()``, and
    no ``batch_end`` work.
    """
    import kafka
    from kafka.structs import TopicPartition

    if kafka.__version__ not in _BATCH_SENDER_VERSIONS:
        return (lambda key, value, headers: producer.send(topic, key=key, value=value, headers=headers)), lambda: None

    all_partitions = sorted(producer.partitions_for(topic))  # waits for metadata, as send() does
    available = list(producer._metadata.available_partitions_for_topic(topic) or ())
    partitions = {p: TopicPartition(topic, p) for p in all_partitions}
    partitioner = producer.config["partitioner"]
    estimate_size = producer._estimate_size_in_bytes
    ensure_valid_size = producer._ensure_valid_record_size
    append = producer._accumulator.append
    sender = producer._sender

    def send(key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> Any:
        if producer._closed:
            raise ProducerClosed(KAFKA_PRODUCER_CLOSED)
        ensure_valid_size(estimate_size(key, value, headers))
        future, batch_is_full, new_batch_created = append(
            partitions[partitioner(key, all_partitions, available)], None, key, value, headers
        )
        if batch_is_full or new_batch_created:
            sender.wakeup()
        return future

    return send, sender.wakeup


def _is_transient(exc: BaseException | None) -> bool:
    return bool(getattr(exc, "retriable", False)) or _is_timeout(exc)


def _is_timeout(exc: BaseException | None) -> bool:
    from kafka.errors import KafkaTimeoutError

    return isinstance(exc, KafkaTimeoutError)


def kafka_producer_config() -> dict[str, object]:
    """Producer settings shared by the relay and the benchmark's raw producer."""
    return {
        "bootstrap_servers": settings.KAFKA_BOOTSTRAP_SERVERS,
        "acks": "all",
        "enable_idempotence": True,
        "linger_ms": 5,
        "batch_size": 256 * 1024,
        "max_request_size": 4 * 1024 * 1024,
        "request_timeout_ms": 5000,
        "delivery_timeout_ms": 15000,
        "max_block_ms": 5000,
        "reconnect_backoff_max_ms": 1000,
    }


def publisher_for(destination: str) -> Publisher:
    from messaging.models import OutboxDelivery

    if destination == OutboxDelivery.Destination.RABBITMQ:
        return AmqpPublisher()
    if destination == OutboxDelivery.Destination.KAFKA:
        return KafkaPublisher()
    raise ValueError(f"unknown outbox destination {destination!r}")
