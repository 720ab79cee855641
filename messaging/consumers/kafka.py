"""Kafka event consumer: a consumer group on ``tour_events`` feeding the handlers routed to Kafka.

Guarantee: at-least-once into the inbox (which makes it effectively once). Auto-commit is off;
offsets are committed only after every record of a poll batch was applied, found duplicate, or
dead-lettered (DLQ topic copy acknowledged by ``acks=all`` + ``DeadLetter`` row).

* Dead-letter path: a DLQ produce that fails (broker down, topic missing, timeout) never kills the
  consumer. It is retried with capped backoff, each attempt bounded by
  ``KAFKA_DLQ_SEND_TIMEOUT_SECONDS`` and logged, on a fresh producer, until the broker acknowledges
  it; the batch's offsets wait for that. Stopping meanwhile leaves the batch uncommitted: it is
  redelivered (the inbox skips what was applied; the DLQ topic may get a record twice).

* Batches: each poll batch is parsed, then applied per handler in ONE inbox transaction
  (dedup + side-effect records + on-commit task dispatch). If that fails the batch is split and
  each record retried ``KAFKA_HANDLER_MAX_ATTEMPTS`` times; a record that still fails is poison
  and goes to the DLQ topic. Database outages (``OperationalError``) are not poison: the whole
  batch is retried with capped backoff until the database answers (or we are told to stop).
* Offset reset: ``auto_offset_reset="earliest"``, on purpose. It only applies to a group with no
  committed offset; "latest" (kafka-python's default) would silently skip every event published
  before the group first started. ``from_beginning=True`` additionally seeks each partition to
  the beginning on first assignment, even when the group has committed offsets (a replay).
* Stop: :meth:`stop` (SIGTERM/SIGINT in the command) lets the current batch finish, commits, closes.
* Broker restart: kafka-python reconnects; poll errors are logged and retried with backoff.
  Rebalance: offsets are committed after every batch, and again for revoked partitions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from django.conf import settings
from django.db import close_old_connections, connection
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaConfigurationError, KafkaError, NoBrokersAvailable
from kafka.structs import OffsetAndMetadata

from messaging.dead_letters import dead_letter_record
from messaging.envelope import Event, InvalidMessage, event_parse
from messaging.inbox import InboxResult, inbox_process
from messaging.publishers import is_producer_closed, kafka_producer_config
from messaging.registry import TRANSPORT_KAFKA, Handler, handler_get, handlers_for_transport
from tourapp.correlation import correlation_scope
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


@dataclass
class _Poison:
    record: Any
    reason: str
    handler: str = ""
    event_type: str = ""
    event_id: str = ""
    correlation_id: str = ""


def _headers(record: Any) -> dict[str, str]:
    return {key: (value or b"").decode("utf-8", "replace") for key, value in (record.headers or [])}


def kafka_producer(*, timeout_seconds: float = 30.0) -> KafkaProducer:
    """The relay's producer settings (``acks=all``, idempotent), every wait bounded by ``timeout_seconds``."""
    timeout_ms = max(int(timeout_seconds * 1000), 1)
    config = kafka_producer_config()
    request_timeout_ms = min(cast(int, config["request_timeout_ms"]), timeout_ms)
    config.update(
        max_block_ms=timeout_ms,
        request_timeout_ms=request_timeout_ms,
        # kafka-python refuses a delivery timeout that does not cover one request after the linger
        delivery_timeout_ms=max(timeout_ms, request_timeout_ms + cast(int, config["linger_ms"]) + 1),
    )
    return KafkaProducer(**config)


class _StopRequested(Exception):
    """The consumer was stopped while a batch could not be finished; its offsets stay uncommitted."""


def republish_to_topic(*, topic: str, key: str, body: bytes, headers: Mapping[str, Any]) -> None:
    """Produce ``body`` back to ``topic`` (re-drive); DLQ bookkeeping headers are dropped."""
    dropped = {"error", "source-topic", "source-partition", "source-offset", "handler"}
    producer = kafka_producer()
    try:
        producer.send(
            topic,
            key=key.encode() if key else None,
            value=body,
            headers=[(k, str(v).encode()) for k, v in headers.items() if k not in dropped],
        ).get(timeout=30)
    finally:
        producer.close(timeout=5)


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
        self._producer: KafkaProducer | None = None
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
            if self._producer is not None:
                self._producer.close(timeout=5)
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
            except _StopRequested:
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
        parsed: list[tuple[Any, Event]] = []
        poison: list[_Poison] = []
        for records in batch.values():
            for record in records:
                headers = _headers(record)
                try:
                    parsed.append((record, event_parse(body=record.value or b"", headers=headers)))
                except InvalidMessage as exc:
                    cid = headers.get("correlationId", "")
                    poison.append(_Poison(record, exc.reason, "", exc.event_type, exc.event_id, cid))
        for handler in self.handlers:
            mine: list[tuple[Any, Event]] = []
            for record, event in parsed:
                if not handler.accepts(event.event_type):
                    continue
                missing = event.missing(handler.required_fields)
                if missing:
                    reason = f"missing fields for handler {handler.name}: {', '.join(missing)}"
                    poison.append(_poison_for(record, event, reason, handler.name))
                else:
                    mine.append((record, event))
            if mine:
                poison += self._apply(handler, mine)
        if poison:
            self._dead_letter(poison)

    def _apply(self, handler: Handler, mine: list[tuple[Any, Event]]) -> list[_Poison]:
        try:
            with correlation_scope(mine[0][1].correlation_id if len(mine) == 1 else None, handler=handler.name):
                result = inbox_process(handler=handler, events=[event for _, event in mine], transport=TRANSPORT_KAFKA)
            self.stats.applied += len(result.applied)
            self.stats.duplicates += len(result.duplicates)
            _log_outcomes(handler, result)
            return []
        except CONNECTION_ERRORS:
            raise
        except Exception:
            logger.warning("batch of %d failed for %s; retrying record by record", len(mine), handler.name)
        poison = []
        for record, event in mine:
            error = self._apply_one(handler, event)
            if error:
                poison.append(_poison_for(record, event, error, handler.name))
        return poison

    def _apply_one(self, handler: Handler, event: Event) -> str:
        """Apply one event with bounded retries; return the error text if it is poison."""
        error = ""
        with correlation_scope(event.correlation_id, event_id=event.event_id, booking_id=event.booking_id):
            for attempt in range(settings.KAFKA_HANDLER_MAX_ATTEMPTS):
                try:
                    result = inbox_process(handler=handler, events=[event], transport=TRANSPORT_KAFKA)
                except CONNECTION_ERRORS:
                    raise
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    logger.warning("handler %s attempt %d failed: %s", handler.name, attempt + 1, error)
                    time.sleep(min(0.05 * 2**attempt, 1.0))
                    continue
                self.stats.applied += len(result.applied)
                self.stats.duplicates += len(result.duplicates)
                _log_outcomes(handler, result)
                return ""
        return f"failed after {settings.KAFKA_HANDLER_MAX_ATTEMPTS} attempts: {error}"

    def _dead_letter(self, poison: list[_Poison]) -> None:
        """DLQ topic copy (acks=all, waited for) first, then the ``DeadLetter`` rows."""
        self._produce_to_dlq_until_acknowledged(poison)
        for item in poison:
            record = item.record
            with correlation_scope(item.correlation_id or None):
                dead_letter_record(
                    transport=TRANSPORT_KAFKA,
                    source=record.topic,
                    reason=item.reason,
                    body=record.value or b"",
                    headers=_headers(record),
                    handler=item.handler,
                    kafka_partition=record.partition,
                    kafka_offset=record.offset,
                    message_key=(record.key or b"").decode("utf-8", "replace"),
                    event_type=item.event_type,
                    event_id=item.event_id,
                    correlation_id=item.correlation_id,
                )
        self.stats.dead_lettered += len(poison)

    def _produce_to_dlq_until_acknowledged(self, poison: list[_Poison]) -> None:
        """Retry the DLQ copies with capped backoff until acknowledged; ``_StopRequested`` if stopped first."""
        backoff, attempt = 0.5, 0
        while True:
            attempt += 1
            try:
                self._produce_to_dlq(poison)
                return
            except Exception as exc:
                if not _is_dlq_produce_failure(exc):
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
                raise _StopRequested()
            backoff = min(backoff * 2, 10.0)

    def _produce_to_dlq(self, poison: list[_Poison]) -> None:
        timeout = settings.KAFKA_DLQ_SEND_TIMEOUT_SECONDS
        if self._producer is None:
            self._producer = kafka_producer(timeout_seconds=timeout)
        futures = []
        for item in poison:
            record = item.record
            headers = [(k, v) for k, v in (record.headers or []) if k not in {"error", "handler"}]
            headers += [
                ("error", item.reason.encode()[:1000]),
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
        while not self._stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            time.sleep(min(remaining, 0.1))
        return False


def _is_dlq_produce_failure(exc: BaseException) -> bool:
    """What producing to the DLQ raises when the broker, the topic or the network is not there.

    kafka-python reports a closed producer with an ``AssertionError`` of its own; any other
    ``AssertionError``, like a producer configuration it refuses, is a programming error that no
    retry can fix, and propagates.
    """
    if isinstance(exc, KafkaConfigurationError):
        return False
    return is_producer_closed(exc) or isinstance(exc, KafkaError | OSError)


def _log_outcomes(handler: Handler, result: InboxResult) -> None:
    """One line per event, under the event's own correlation id, so a booking can be traced here too."""
    for outcome, events in (("applied", result.applied), ("duplicate skipped", result.duplicates)):
        for event in events:
            with correlation_scope(event.correlation_id, event_id=event.event_id, booking_id=event.booking_id):
                logger.info("%s %s by %s", event.event_type, outcome, handler.name)


def _poison_for(record: Any, event: Event, reason: str, handler_name: str) -> _Poison:
    return _Poison(record, reason, handler_name, event.event_type, str(event.event_id or ""), event.correlation_id)


def kafka_consume(
    *,
    handler_names: Sequence[str] | None = None,
    **options: Any,
) -> KafkaConsumeStats:
    """Build a :class:`KafkaEventConsumer` (handlers by name override the routes) and run it."""
    handlers = [handler_get(name) for name in handler_names] if handler_names else None
    return KafkaEventConsumer(handlers=handlers, **options).run()
