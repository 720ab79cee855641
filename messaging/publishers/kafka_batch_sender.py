"""Kafka fast path: a batch's records appended to the producer's accumulator, per-batch checks done once.

Built on kafka-python internals (the producer's metadata, accumulator, sender and size checks),
so it runs only where ``KAFKA_BATCH_SENDER_GATE`` is open; elsewhere every record goes through the
public ``KafkaProducer.send()``. Why: ``send()``'s Python time per record, under one interpreter
lock with the relay's database threads, limits the Kafka relay (figures: docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafka.structs import TopicPartition

from messaging.publishers.version_gate import VersionGate

KAFKA_BATCH_SENDER_GATE = VersionGate(
    distribution="kafka-python",
    supported=("2.2.15",),
    fast_path="the batch sender",
    fallback="KafkaProducer.send() per record",
)

# kafka-python's send() asserts this; the batch sender raises the same condition as ProducerClosed.
KAFKA_PRODUCER_CLOSED = "KafkaProducer already closed!"

Send = Callable[[bytes, bytes, list[tuple[str, bytes]]], Any]


class ProducerClosed(Exception):
    """The Kafka producer was closed under the batch: the broker was not asked, nothing is decided."""


def kafka_batch_sender(*, producer: Any, topic: str) -> tuple[Send, Callable[[], None]]:
    """``(send, batch_end)`` for one batch of records to ``topic``: ``send(key, value, headers) ->
    future`` per record, then ``batch_end()`` once the whole batch is handed over.

    With the gate open, the checks that hold for the whole batch (topic, metadata wait, producer
    not closed, header types) run once; then per record exactly what ``send()`` does next: the
    configured partitioner on the same partition lists, the same record size check
    (``MessageSizeTooLargeError``) and the append to the producer's own accumulator, which returns
    the same future. Its sender thread, retries, idempotence sequence numbers and ``acks`` are
    untouched; ``batch_end`` wakes the sender at once instead of after ``linger_ms``. With the gate
    closed: plain ``send()`` and a ``batch_end`` that does nothing.
    """
    if not KAFKA_BATCH_SENDER_GATE.is_open():
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
