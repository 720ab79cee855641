"""Kafka publisher: idempotent producer, ``acks=all``; a row is delivered only when its future succeeded.

Outcome semantics are those of ``messaging.publishers.base``. kafka-python's one
``AssertionError`` that means a closed producer is a transport condition (undecided), recognised
by :func:`is_producer_closed`; any other ``AssertionError`` is a failure of that record.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from messaging.publishers.base import OutboundMessage, PublishOutcome
from messaging.publishers.kafka_batch_sender import KAFKA_PRODUCER_CLOSED, ProducerClosed, kafka_batch_sender

logger = logging.getLogger(__name__)


def is_producer_closed(exc: BaseException) -> bool:
    """True for kafka-python's "producer already closed" ``AssertionError`` (and ours)."""
    return isinstance(exc, ProducerClosed) or (isinstance(exc, AssertionError) and str(exc) == KAFKA_PRODUCER_CLOSED)


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


@dataclass(slots=True)
class _KafkaInFlight:
    generation: int
    futures: list = field(default_factory=list)  # (delivery id, FutureRecordMetadata)
    outcome: PublishOutcome = field(default_factory=PublishOutcome)


class KafkaPublisher:
    """Idempotence in kafka-python 2.2 forces ``max_in_flight_requests_per_connection=1``, so records
    of one key keep their order even across the producer's internal retries. ``begin`` only appends
    a batch to the producer's buffer; ``complete`` waits for that batch's futures, so the next
    batch is already being sent meanwhile. When the broker is unreachable the producer is closed
    (its buffer dropped); batches begun on it come back undecided and are retried later.
    """

    def __init__(self, *, topic: str | None = None, complete_timeout: float = 20.0):
        self.topic = topic or settings.KAFKA_TOPIC
        self.complete_timeout = complete_timeout
        self._producer: Any = None
        self._generation = 0

    def _connect(self) -> Any:
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
        inflight = _KafkaInFlight(generation=self._generation)
        batch_end = None
        try:
            producer = self._producer or self._connect()
            send, batch_end = kafka_batch_sender(producer=producer, topic=self.topic)
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


def _is_transient(exc: BaseException | None) -> bool:
    return bool(getattr(exc, "retriable", False)) or isinstance(exc, KafkaTimeoutError)
