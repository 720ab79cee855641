"""Kafka dead letters: poison records go to the DLQ topic, then get a ``DeadLetter`` row.

Guarantee: :meth:`KafkaDeadLetters.send` returns only once the broker acknowledged every copy
(``acks=all``) and the rows were written, so the consumer commits the batch's offsets after it.
A DLQ produce that fails (broker down, topic missing, timeout) never kills the consumer: it is
retried with capped backoff, each attempt bounded by ``KAFKA_DLQ_SEND_TIMEOUT_SECONDS`` and
logged, on a fresh producer. Stopping meanwhile raises :class:`StopRequested`: the batch stays
uncommitted and is redelivered (the inbox skips what was applied; the DLQ topic may get a
record twice).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from kafka import KafkaProducer
from kafka.errors import KafkaConfigurationError, KafkaError

from messaging.consumers.pipeline import Rejection
from messaging.dead_letters import dead_letter_record
from messaging.publishers.kafka import is_producer_closed
from messaging.publishers.republish import kafka_producer
from messaging.registry import TRANSPORT_KAFKA
from tourapp.correlation import correlation_scope

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Poison:
    """A record that cannot be handled, for one handler ("" when it could not even be parsed)."""

    record: Any  # kafka.consumer.fetcher.ConsumerRecord
    headers: dict[str, str]
    handler: str
    rejection: Rejection


class StopRequested(Exception):
    """The consumer was stopped before the DLQ acknowledged; the batch's offsets stay uncommitted."""


def is_dlq_produce_failure(exc: BaseException) -> bool:
    """What producing to the DLQ raises when the broker, the topic or the network is not there.

    kafka-python reports a closed producer with an ``AssertionError`` of its own; any other
    ``AssertionError``, like a producer configuration it refuses, is a programming error that no
    retry can fix, and propagates.
    """
    if isinstance(exc, KafkaConfigurationError):
        return False
    return is_producer_closed(exc) or isinstance(exc, KafkaError | OSError)


class KafkaDeadLetters:
    """Sends poison to ``KAFKA_DLQ_TOPIC`` (one producer, kept until ``close``) and records the rows."""

    def __init__(self, *, stopping: Callable[[], bool]) -> None:
        self._stopping = stopping
        self._producer: KafkaProducer | None = None

    def send(self, poison: Sequence[Poison]) -> None:
        """DLQ topic copies (acks=all, waited for) first, then the ``DeadLetter`` rows."""
        self._produce_until_acknowledged(poison)
        for item in poison:
            record, rejection = item.record, item.rejection
            with correlation_scope(rejection.correlation_id or None):
                dead_letter_record(
                    transport=TRANSPORT_KAFKA,
                    source=record.topic,
                    reason=rejection.reason,
                    body=record.value or b"",
                    headers=item.headers,
                    handler=item.handler,
                    kafka_partition=record.partition,
                    kafka_offset=record.offset,
                    message_key=(record.key or b"").decode("utf-8", "replace"),
                    event_type=rejection.event_type,
                    event_id=rejection.event_id,
                    correlation_id=rejection.correlation_id,
                )

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None

    def _produce_until_acknowledged(self, poison: Sequence[Poison]) -> None:
        """Retry the DLQ copies with capped backoff until acknowledged; ``StopRequested`` if stopped first."""
        backoff, attempt = 0.5, 0
        while True:
            attempt += 1
            try:
                self._produce(poison)
                return
            except Exception as exc:
                if not is_dlq_produce_failure(exc):
                    raise
                self._drop_producer()
                log = logger.warning if attempt < 5 else logger.error
                log(
                    "dead-letter produce of %d record(s) to %s failed (attempt %d): %s: %s; retrying in %.1fs",
                    len(poison),
                    settings.KAFKA_DLQ_TOPIC,
                    attempt,
                    type(exc).__name__,
                    exc,
                    backoff,
                )
            if not self._sleep_unless_stopping(backoff):
                raise StopRequested()
            backoff = min(backoff * 2, 10.0)

    def _produce(self, poison: Sequence[Poison]) -> None:
        timeout = settings.KAFKA_DLQ_SEND_TIMEOUT_SECONDS
        if self._producer is None:
            self._producer = kafka_producer(timeout_seconds=timeout)
        futures = []
        for item in poison:
            record = item.record
            headers = [(k, v) for k, v in (record.headers or []) if k not in {"error", "handler"}]
            headers += [
                ("error", item.rejection.reason.encode()[:1000]),
                ("handler", item.handler.encode()),
                ("source-topic", record.topic.encode()),
                ("source-partition", str(record.partition).encode()),
                ("source-offset", str(record.offset).encode()),
            ]
            futures.append(
                self._producer.send(settings.KAFKA_DLQ_TOPIC, key=record.key, value=record.value, headers=headers)
            )
        deadline = time.monotonic() + timeout
        for future in futures:
            future.get(timeout=max(deadline - time.monotonic(), 0.001))

    def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=0)  # drops what it still buffers: all of it is re-sent
            except Exception:  # a broken producer fails to close in many ways; it is gone anyway
                logger.debug("error while closing the DLQ producer", exc_info=True)

    def _sleep_unless_stopping(self, seconds: float) -> bool:
        """Sleep in short steps so a stop request is honoured quickly; False if stopped."""
        deadline = time.monotonic() + seconds
        while not self._stopping():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            time.sleep(min(remaining, 0.1))
        return False
