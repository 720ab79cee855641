"""RabbitMQ publisher: persistent, ``mandatory`` messages with publisher confirms pipelined per batch.

Outcome semantics are those of ``messaging.publishers.base``: ``basic.ack`` = delivered,
``basic.nack`` or ``basic.return`` (unroutable) = failed, a lost connection or a missing
confirm = undecided.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from amqp import Message
from amqp.exceptions import AMQPError
from django.conf import settings
from kombu.exceptions import KombuError

from messaging.amqp import events_connection, events_exchange
from messaging.publishers.base import OutboundMessage, PublishOutcome
from messaging.publishers.rabbitmq_frames import AMQP_FRAME_WRITER_GATE, BatchFrameWriter

logger = logging.getLogger(__name__)

AMQP_CONFIRM_TIMEOUT_SECONDS = 15.0
# What a lost or refused RabbitMQ connection raises (the batch is then undecided, never failed).
_TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (OSError, AMQPError, KombuError)


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


class AmqpPublisher:
    """``begin`` writes the whole batch; ``complete`` collects its confirms (``basic.ack`` /
    ``basic.nack``, honouring ``multiple``), so a batch costs one round trip, not one per message,
    and the next batch is written while this one's confirms travel. RabbitMQ acks an unroutable
    message too, after returning it: a ``basic.return`` marks that message failed. The exchange is
    declared once per connection. Messages unconfirmed when the connection is lost are undecided.

    Where ``AMQP_FRAME_WRITER_GATE`` is open the batch goes out in one socket write
    (``BatchFrameWriter``); elsewhere through ``Channel.basic_publish``, message by message. Both
    writes are bounded by the confirm timeout, so a broker that stops reading makes the batch
    undecided instead of hanging the relay.
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
        self._frames: BatchFrameWriter | None = None  # None: the public per-message path

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
        self._frames = (
            BatchFrameWriter(connection=conn.connection, exchange=self.exchange)
            if AMQP_FRAME_WRITER_GATE.is_open()
            else None
        )

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
            if self._frames is not None:
                self._begin_batched(batch, self._frames)
            else:
                self._begin_per_message(batch)
        except _TRANSPORT_ERRORS as exc:
            self._lost(batch, exc)
        return batch

    def _begin_batched(self, batch: _AmqpInFlight, frames: BatchFrameWriter) -> None:
        channel_id = self._channel.channel_id
        frames.begin()
        for message in batch.messages:
            self._by_message_id[message.event_id] = (batch, message.delivery_id)
            frames.add(channel_id=channel_id, routing_key=message.routing_key, message=amqp_message(message))
            self._track(batch, message)
        frames.send(timeout=self.confirm_timeout)

    def _begin_per_message(self, batch: _AmqpInFlight) -> None:
        for message in batch.messages:
            self._by_message_id[message.event_id] = (batch, message.delivery_id)
            self._channel.basic_publish(
                amqp_message(message),
                exchange=self.exchange,
                routing_key=message.routing_key,
                mandatory=True,
                timeout=self.confirm_timeout,
            )
            self._track(batch, message)

    def _track(self, batch: _AmqpInFlight, message: OutboundMessage) -> None:
        self._by_tag[self._next_tag] = (batch, message.delivery_id)
        self._next_tag += 1
        batch.unconfirmed += 1

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
