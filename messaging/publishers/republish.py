"""Re-publishing a message a consumer already received: retry and DLQ copies, and re-drives.

Unlike the relay's publishers these send one message at a time, outside the outbox: the message
is already on a broker and its consumer keeps it (unacked / its offset uncommitted) until the
copy was confirmed, so a lost copy is delivered again, never lost. Both wait for the broker:
RabbitMQ with publisher confirms, Kafka with ``acks=all``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from kafka import KafkaProducer
from kombu import Producer

from messaging.amqp import events_connection
from messaging.publishers.kafka import kafka_producer_config

# Bookkeeping a consumer adds to a DLQ copy; a re-drive sends the message as it first arrived.
_KAFKA_DLQ_HEADERS = frozenset({"error", "source-topic", "source-partition", "source-offset", "handler"})


class AmqpRepublisher:
    """A confirmed publishing connection of its own, opened on first use and kept until ``close``."""

    def __init__(self) -> None:
        self._connection: Any = None
        self._producer: Producer | None = None

    def publish(self, *, body: bytes, exchange: str, routing_key: str, headers: dict[str, Any], props: dict) -> None:
        """Publish persistently and wait for the broker's confirm; ``props`` are the original message's."""
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


def republish_to_queue(*, queue_name: str, body: bytes, headers: Mapping[str, Any]) -> None:
    """Publish ``body`` straight into ``queue_name`` (default exchange); used to re-drive.

    The ``x-`` headers (retry count, error, death records) are dropped: the message starts over.
    """
    clean = {key: value for key, value in headers.items() if not key.startswith("x-")}
    republisher = AmqpRepublisher()
    try:
        republisher.publish(body=body, exchange="", routing_key=queue_name, headers=clean, props={})
    finally:
        republisher.close()


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


def republish_to_topic(*, topic: str, key: str, body: bytes, headers: Mapping[str, Any]) -> None:
    """Produce ``body`` back to ``topic`` (re-drive); DLQ bookkeeping headers are dropped."""
    producer = kafka_producer()
    try:
        producer.send(
            topic,
            key=key.encode() if key else None,
            value=body,
            headers=[(k, str(v).encode()) for k, v in headers.items() if k not in _KAFKA_DLQ_HEADERS],
        ).get(timeout=30)
    finally:
        producer.close(timeout=5)
