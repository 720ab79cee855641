"""Kafka transport: a consumer group on ``tour_events`` feeding the handlers routed to Kafka.

Guarantee: at-least-once into the inbox (which makes it effectively once). Auto-commit is off;
offsets are committed only after every record of a poll batch was applied, found duplicate, or
dead-lettered (DLQ topic copy acknowledged by ``acks=all`` + ``DeadLetter`` row, see
:mod:`.kafka_dead_letters`).

* Batches: each poll batch goes through the shared pipeline (:mod:`.pipeline`): parsed, then
  applied per handler in ONE inbox transaction; if that fails, record by record with
  ``KAFKA_HANDLER_MAX_ATTEMPTS`` tries each, and a record that still fails is poison. Database
  outages (``OperationalError``) are not poison: the whole batch is retried with capped backoff
  until the database answers (or we are told to stop).
* Offset reset: ``auto_offset_reset="earliest"``, on purpose. It only applies to a group with no
  committed offset; "latest" (kafka-python's default) would silently skip every event published
  before the group first started. ``from_beginning=True`` additionally seeks each partition to
  the beginning on first assignment, even when the group has committed offsets (a replay).
* Stop: :meth:`KafkaEventConsumer.stop` (SIGTERM/SIGINT in ``run_kafka_consumer``) lets the
  current batch finish, commits, closes.
* Broker restart: kafka-python reconnects; poll errors are logged and retried with backoff.
  Rebalance: offsets are committed after every batch, and again for revoked partitions.
* Lag: refreshed in ``KAFKA_CONSUMER_LAG`` and logged with the progress line every
  ``KAFKA_PROGRESS_LOG_SECONDS``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, NoBrokersAvailable
from kafka.structs import OffsetAndMetadata

from messaging.consumers.kafka_dead_letters import KafkaDeadLetters, Poison, StopRequested
from messaging.consumers.pipeline import Pipeline, Received, Rejection
from messaging.envelope import Event
from messaging.inbox import InboxResult
from messaging.registry import TRANSPORT_KAFKA, Handler, handler_get, handlers_for_transport
from tourapp.db import CONNECTION_ERRORS
from tourapp.metrics import KAFKA_CONSUMER_LAG

logger = logging.getLogger(__name__)


@dataclass
class KafkaConsumeStats:
    records: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    batches: int = 0
    lag: dict[str, int] = field(default_factory=dict)


def _received(record: Any) -> Received[Any]:
    headers = {key: (value or b"").decode("utf-8", "replace") for key, value in (record.headers or [])}
    return Received(
        message=record, body=record.value or b"", headers=headers, correlation_id=headers.get("correlationId", "")
    )


class _KafkaBatch:
    """The pipeline's outcomes for one poll batch: counted, poison kept for the DLQ (nothing to ack per record)."""

    name = TRANSPORT_KAFKA
    reraise = CONNECTION_ERRORS  # a database outage: retry the whole batch, nobody is poison

    def __init__(self, stats: KafkaConsumeStats) -> None:
        self.stats = stats
        self.poison: list[Poison] = []

    @property
    def attempts(self) -> int:
        return settings.KAFKA_HANDLER_MAX_ATTEMPTS

    def done(self, handler: Handler, items: Sequence[Received[Any]], result: InboxResult) -> None:
        self.stats.applied += len(result.applied)
        self.stats.duplicates += len(result.duplicates)

    def invalid(self, handler: Handler | None, item: Received[Any], rejection: Rejection) -> None:
        self.poison.append(Poison(item.message, dict(item.headers), handler.name if handler else "", rejection))

    def failed(self, handler: Handler, item: Received[Any], event: Event, error: str) -> None:
        reason = f"failed after {self.attempts} attempts: {error}"
        self.invalid(handler, item, Rejection.of(event, reason))


class _RebalanceListener(ConsumerRebalanceListener):
    def __init__(self, owner: KafkaEventConsumer) -> None:
        self.owner = owner

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.owner.commit_done(partitions=set(revoked))
        logger.info("partitions revoked: %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        logger.info("partitions assigned: %s", sorted(f"{tp.topic}[{tp.partition}]" for tp in assigned))
        if self.owner.from_beginning:
            fresh = [tp for tp in assigned if tp not in self.owner.rewound]
            if fresh:
                self.owner.consumer.seek_to_beginning(*fresh)
                self.owner.rewound.update(fresh)


# Consecutive idle polls that burnt their whole wait on CPU before the consumer is recreated.
_SPINNING_POLLS_BEFORE_RECONNECT = 10


class KafkaEventConsumer:
    """See the module docstring. ``run()`` returns when stopped, idle, caught up or at max_messages."""

    def __init__(
        self,
        *,
        handlers: Sequence[Handler] | None = None,
        topic: str | None = None,
        group: str | None = None,
        from_beginning: bool = False,
        max_messages: int | None = None,
        idle_timeout: float | None = None,
        until_caught_up: bool = False,
        poll_timeout_ms: int = 500,
    ) -> None:
        self.handlers = list(handlers) if handlers is not None else handlers_for_transport(TRANSPORT_KAFKA)
        self.topic = topic or settings.KAFKA_TOPIC
        self.group = group or settings.KAFKA_CONSUMER_GROUP
        self.from_beginning = from_beginning
        self.max_messages = max_messages
        self.idle_timeout = idle_timeout
        self.until_caught_up = until_caught_up
        self.poll_timeout_ms = poll_timeout_ms
        self.stats = KafkaConsumeStats()
        self.rewound: set[TopicPartition] = set()
        self._done: dict[TopicPartition, int] = {}  # next offset to commit, per partition
        self._stopping = False
        self._dead_letters = KafkaDeadLetters(stopping=lambda: self._stopping)
        self._progress_logged: tuple[object, ...] | None = None  # what the last INFO progress line said
        self.consumer = self._connect()

    def _connect(self) -> KafkaConsumer:
        """Create the consumer, waiting (with backoff) for a broker that is down or still starting."""
        backoff = 0.5
        while True:
            try:
                return KafkaConsumer(
                    bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
                    group_id=self.group,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    max_poll_records=settings.KAFKA_CONSUMER_MAX_RECORDS,
                    client_id=f"tourapp-consumer-{self.group}",
                )
            except NoBrokersAvailable:
                if self._stopping:
                    raise
                logger.warning(
                    "no Kafka broker at %s yet; retrying in %.1fs", settings.KAFKA_BOOTSTRAP_SERVERS, backoff
                )
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    def stop(self) -> None:
        """Ask the loop to stop after the current batch (safe from a signal handler)."""
        self._stopping = True

    # ------------------------------------------------------------------ loop
    def run(self) -> KafkaConsumeStats:
        self.consumer.subscribe([self.topic], listener=_RebalanceListener(self))
        logger.info(
            "kafka consumer started: topic=%s group=%s handlers=%s from_beginning=%s",
            self.topic,
            self.group,
            [h.name for h in self.handlers],
            self.from_beginning,
        )
        last_record_at = last_progress_at = time.monotonic()
        backoff = 0.5
        spinning_polls = 0
        try:
            while not self._stopping:
                close_old_connections()
                if self.max_messages is not None and self.stats.records >= self.max_messages:
                    break
                polled_at, cpu_at = time.monotonic(), time.process_time()
                try:
                    batch = self.consumer.poll(timeout_ms=self.poll_timeout_ms, max_records=self._max_records())
                except KafkaError:
                    logger.warning("kafka poll failed; retrying in %.1fs", backoff, exc_info=True)
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                backoff = 0.5
                now = time.monotonic()
                spinning_polls = self._spin_check(batch, now - polled_at, time.process_time() - cpu_at, spinning_polls)
                if batch:
                    last_record_at = now
                    self._handle_until_done(batch)
                    self.commit_done()
                if now - last_progress_at >= settings.KAFKA_PROGRESS_LOG_SECONDS:
                    self._log_progress()
                    last_progress_at = now
                if self.until_caught_up and self._caught_up():
                    break
                if not batch and self.idle_timeout is not None and now - last_record_at >= self.idle_timeout:
                    break
        finally:
            self.commit_done()
            self._log_progress()
            self.consumer.close(autocommit=False)
            self._dead_letters.close()
        return self.stats

    def _spin_check(self, batch: Mapping[TopicPartition, list[Any]], wall: float, cpu: float, spins: int) -> int:
        """Reconnect when idle polls busy-wait instead of sleeping; return the new spin count.

        kafka-python 2.2 can get stuck after a broker restart with its heartbeat deadline at 0:
        every idle ``poll()`` then spins for its whole timeout and the process burns a core. A
        fresh consumer (same group, committed offsets) does not; records are not lost or doubled.
        """
        if batch or wall < 0.1 or cpu < 0.8 * wall:
            return 0
        if spins + 1 < _SPINNING_POLLS_BEFORE_RECONNECT:
            return spins + 1
        logger.warning("kafka consumer busy-waits in idle polls; reconnecting")
        self.commit_done()
        self.consumer.close(autocommit=False)
        self.consumer = self._connect()
        self.consumer.subscribe([self.topic], listener=_RebalanceListener(self))
        return 0

    def _max_records(self) -> int:
        limit = settings.KAFKA_CONSUMER_MAX_RECORDS
        if self.max_messages is not None:
            limit = max(1, min(limit, self.max_messages - self.stats.records))
        return limit

    def commit_done(self, partitions: set[TopicPartition] | None = None) -> None:
        offsets = {
            tp: OffsetAndMetadata(offset, "", -1)
            for tp, offset in self._done.items()
            if partitions is None or tp in partitions
        }
        if not offsets:
            return
        try:
            self.consumer.commit(offsets)
        except KafkaError:
            # The records will be redelivered to whoever owns the partition; the inbox dedups them.
            logger.warning("offset commit failed", exc_info=True)
            return
        for tp in offsets:
            self._done.pop(tp, None)

    def _caught_up(self) -> bool:
        assignment = self.consumer.assignment()
        if not assignment:
            return False
        try:
            ends = self.consumer.end_offsets(list(assignment))
            return all(self.consumer.position(tp) >= ends[tp] for tp in assignment)
        except KafkaError:
            return False

    def _log_progress(self) -> None:
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                lag = max(highwater - self.consumer.position(tp), 0)
            except KafkaError:
                continue
            self.stats.lag[f"{tp.topic}[{tp.partition}]"] = lag
            KAFKA_CONSUMER_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(lag)
        # An idle consumer refreshes its lag gauges but says nothing new: the line goes to DEBUG.
        seen = (self.stats.records, self.stats.dead_lettered, tuple(sorted(self.stats.lag.items())))
        level = logging.INFO if seen != self._progress_logged else logging.DEBUG
        self._progress_logged = seen
        logger.log(
            level,
            "kafka consumer progress: records=%d applied=%d duplicates=%d dead_lettered=%d lag=%s",
            self.stats.records,
            self.stats.applied,
            self.stats.duplicates,
            self.stats.dead_lettered,
            self.stats.lag,
        )

    # ------------------------------------------------------------------ one batch
    def _handle_until_done(self, batch: Mapping[TopicPartition, list[Any]]) -> None:
        """Handle a batch; on a database outage retry it (the inbox skips what was already done)."""
        backoff = 0.5
        while True:
            try:
                self._handle_batch(batch)
                break
            except StopRequested:
                logger.warning("stopped before the batch was dead-lettered; its offsets stay uncommitted")
                return
            except CONNECTION_ERRORS:
                logger.warning("database unavailable; retrying the batch in %.1fs", backoff, exc_info=True)
                connection.close()
                if self._stopping:
                    raise
                time.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
        self.stats.batches += 1
        for tp, records in batch.items():
            self.stats.records += len(records)
            self._done[tp] = records[-1].offset + 1

    def _handle_batch(self, batch: Mapping[TopicPartition, list[Any]]) -> None:
        outcome = _KafkaBatch(self.stats)
        Pipeline(outcome).handle_log(self.handlers, [_received(r) for records in batch.values() for r in records])
        if outcome.poison:
            self._dead_letters.send(outcome.poison)
            self.stats.dead_lettered += len(outcome.poison)


def kafka_consume(
    *,
    handler_names: Sequence[str] | None = None,
    **options: Any,
) -> KafkaConsumeStats:
    """Build a :class:`KafkaEventConsumer` (handlers by name override the routes) and run it."""
    handlers = [handler_get(name) for name in handler_names] if handler_names else None
    return KafkaEventConsumer(handlers=handlers, **options).run()
