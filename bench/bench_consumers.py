"""Consumer throughput against raw consumers of the same messages, on the real brokers. Prints JSON.

    .venv/bin/python bench/bench_consumers.py [--events 20000] [--amqp-events 5000]

Everything runs in a dedicated database (``tourapp_bench_consumers``, created and migrated if
missing; the rows this run wrote are deleted at the end) with a unique exchange, queue prefix,
topic, Redis prefix and Celery queue (all deleted at the end), so a running ``make run`` never
sees these messages. No Celery worker runs: the dispatched send tasks are counted, then purged.

* Kafka: ``--events`` wire-format ``tour.booked`` records are produced once. A raw kafka-python
  consumer (own group, decode JSON, nothing else) reads them all; then ``KafkaEventConsumer``
  (fresh group) handles the same records with the notifications AND availability handlers:
  parse/validate, Redis fast path, one inbox transaction per handler per poll batch
  (ProcessedMessage + Notification rows / read-model update), on-commit task dispatch, offset
  commit. Target: path >= 0.3 x raw.
* RabbitMQ: ``--amqp-events`` messages go to the notifications queue; a raw kombu consumer
  (prefetch as configured, decode JSON, ack) drains a copy in its own queue; then the real
  consumer (``rabbitmq_consume``, the worker's code: parse each message, one inbox transaction and
  task dispatch for what the broker already sent (up to the prefetch), then the acks).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RUN = uuid.uuid4().hex[:8]
BENCH_DB = os.environ.get("BENCH_CONSUMERS_DATABASE_NAME", "tourapp_bench_consumers")
_BASE_URL = os.environ.get("DATABASE_URL", "postgres://tourapp:tourapp@127.0.0.1:5432/tourapp")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tourapp.settings")
os.environ["DATABASE_URL"] = _BASE_URL.rsplit("/", 1)[0] + f"/{BENCH_DB}"
os.environ["EVENTS_EXCHANGE"] = f"tour_events.bench.{RUN}"
os.environ["DEBUG"] = "false"  # as in production: DEBUG keeps and times every SQL statement
os.environ["EVENTS_QUEUE_PREFIX"] = f"bench.{RUN}."
os.environ["KAFKA_TOPIC"] = f"tour_events.bench.{RUN}"
os.environ["KAFKA_CONSUMER_GROUP"] = f"tourapp.bench.{RUN}"
os.environ["REDIS_KEY_PREFIX"] = f"tourapp.bench.{RUN}"
os.environ["CELERY_TASK_DEFAULT_QUEUE"] = f"celery.bench.{RUN}"
os.environ.setdefault("LOG_LEVEL", "WARNING")


def _ensure_database() -> None:
    import psycopg

    with psycopg.connect(_BASE_URL.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone():
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def _payloads(count: int, departure_id: int, tour_id: int) -> list[dict]:
    now = "2026-11-27T10:00:00+00:00"
    return [
        {
            "eventId": str(uuid.uuid4()),
            "eventType": "tour.booked",
            "occurredAt": now,
            "bookingId": n,
            "tourId": tour_id,
            "departureId": departure_id,
            "userId": 1,
            "bookingDate": now,
            "status": "confirmed",
            "seats": 1,
            "tier": "standard",
            "totalPrice": "199.99",
            "currency": "USD",
            "userEmail": f"user{n}@example.com",
            "phone": "+33600000000",
            "tourName": "Paris City Tour",
        }
        for n in range(count)
    ]


def bench_kafka(count: int, departure_id: int, tour_id: int) -> dict:
    from django.conf import settings
    from kafka import KafkaConsumer, KafkaProducer

    from tests.support.kafka import kafka_topics_create, kafka_topics_delete

    topic = settings.KAFKA_TOPIC
    kafka_topics_create(topic, dlq_topic=settings.KAFKA_DLQ_TOPIC)
    try:
        producer = KafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, acks="all", linger_ms=5)
        for payload in _payloads(count, departure_id, tour_id):
            producer.send(
                topic,
                key=str(payload["bookingId"]).encode(),
                value=json.dumps(payload).encode(),
                headers=[("eventType", b"tour.booked"), ("eventId", payload["eventId"].encode())],
            )
        producer.flush()
        producer.close()

        raw = KafkaConsumer(
            topic,
            bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
            group_id=f"raw.{RUN}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.KAFKA_CONSUMER_MAX_RECORDS,
        )
        seen = 0
        while seen < count:  # the group join is excluded from the timing: start at the first record
            batch = raw.poll(timeout_ms=500)
            if batch:
                started = time.perf_counter()
                for records in batch.values():
                    for record in records:
                        json.loads(record.value)
                        seen += 1
                break
        while seen < count:
            for records in raw.poll(timeout_ms=500).values():
                for record in records:
                    json.loads(record.value)
                    seen += 1
            raw.commit()
        raw_seconds = time.perf_counter() - started
        raw.close()

        paths = {name: _kafka_path(count, name) for name in ("availability", "notifications")}
    finally:
        kafka_topics_delete(topic, settings.KAFKA_DLQ_TOPIC)
    raw_rate = count / raw_seconds
    result: dict = {"events": count, "raw_events_per_s": round(raw_rate)}
    for name, (records, applied, batches, seconds) in paths.items():
        result[f"path_{name}"] = {
            "events_per_s": round(records / seconds),
            "ratio_to_raw": round((records / seconds) / raw_rate, 3),
            "applied": applied,
            "batches": batches,
        }
    return result


def _kafka_path(count: int, handler_name: str) -> tuple[int, int, int, float]:
    """The real consumer (fresh group, from the beginning) driving one handler over the records."""
    from messaging.consumers.kafka import KafkaEventConsumer
    from messaging.registry import handler_get

    consumer = KafkaEventConsumer(
        handlers=[handler_get(handler_name)],
        group=f"path.{handler_name}.{RUN}",
        from_beginning=True,
        max_messages=count,
    )
    # Exclude the group join: time from the first handled batch, as for the raw consumer.
    original = consumer._handle_until_done
    marks: list[float] = []

    def timed(batch):  # type: ignore[no-untyped-def]  # wraps the consumer's own method
        if not marks:
            marks.append(time.perf_counter())
        return original(batch)

    consumer._handle_until_done = timed  # type: ignore[method-assign]  # benchmark instrumentation
    stats = consumer.run()
    return stats.records, stats.applied, stats.batches, time.perf_counter() - marks[0]


def bench_rabbitmq(count: int, departure_id: int, tour_id: int) -> dict:
    from django.conf import settings
    from kombu import Consumer, Producer, Queue

    from messaging.amqp import events_connection, events_exchange
    from messaging.consumers.rabbitmq_topology import queue_name_for, rabbitmq_topology_setup
    from messaging.consumers.rabbitmq_worker import rabbitmq_consume

    rabbitmq_topology_setup(handler_names=["notifications"])
    raw_queue = Queue(f"bench.{RUN}.raw", exchange=events_exchange(), routing_key="tour.booked.*", durable=False)
    with events_connection(transport_options={"confirm_publish": True}) as connection:
        raw_queue(connection.default_channel).declare()
        producer = Producer(connection, exchange=events_exchange())
        for payload in _payloads(count, departure_id, tour_id):
            producer.publish(
                json.dumps(payload).encode(),
                routing_key="tour.booked.standard",
                headers={"eventType": "tour.booked", "eventId": payload["eventId"]},
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                message_id=payload["eventId"],
            )

    seen = 0

    def on_message(message) -> None:  # type: ignore[no-untyped-def]  # kombu callback
        nonlocal seen
        json.loads(message.body)
        message.ack()
        seen += 1

    with events_connection() as connection:
        consumer = Consumer(
            connection.channel(),
            queues=[raw_queue],
            on_message=on_message,
            prefetch_count=settings.EVENTS_PREFETCH_COUNT,
        )
        consumer.consume()
        started = time.perf_counter()
        while seen < count:
            connection.drain_events(timeout=5)
        raw_seconds = time.perf_counter() - started
        consumer.cancel()
        raw_queue(connection.default_channel).delete()

    started = time.perf_counter()
    handled = rabbitmq_consume(handler_names=["notifications"], max_messages=count, idle_timeout=5, timeout=600)
    path_seconds = time.perf_counter() - started
    with events_connection() as connection:
        channel = connection.default_channel
        for name in (queue_name_for("notifications"), f"{queue_name_for('notifications')}.dlq"):
            channel.queue_delete(name)
        for delay in settings.EVENTS_RETRY_DELAYS:
            channel.queue_delete(f"{queue_name_for('notifications')}.retry.{round(delay * 1000)}ms")
        channel.exchange_delete(f"{settings.EVENTS_EXCHANGE}.dlx")
        channel.exchange_delete(settings.EVENTS_EXCHANGE)
    return {
        "events": count,
        "raw_events_per_s": round(count / raw_seconds),
        "path_events_per_s": round(handled / path_seconds),
        "ratio": round((handled / path_seconds) / (count / raw_seconds), 3),
    }


def _say(message: str) -> None:
    """A progress line on stderr (stdout carries only the JSON report)."""
    print(f"[{Path(__file__).stem} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--amqp-events", type=int, default=5000)
    args = parser.parse_args()

    _ensure_database()
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from availability.models import Departure, DepartureAvailability, Tour
    from messaging.models import DeadLetter, ProcessedMessage
    from notifications.models import Notification
    from tourapp.celery import app

    tour = Tour.objects.create(name="Bench tour", slug=f"bench-{RUN}", base_price="199.99")
    departure = Departure.objects.create(tour=tour, starts_at="2030-01-01T10:00:00Z", capacity=10**9)
    result: dict = {"run": RUN}
    try:
        _say(f"Kafka: {args.events} events, raw consumer then the pipeline's paths")
        result["kafka"] = bench_kafka(args.events, departure.pk, tour.pk)
        _say(f"RabbitMQ: {args.amqp_events} events")
        result["rabbitmq"] = bench_rabbitmq(args.amqp_events, departure.pk, tour.pk)
        _say("done")
        with app.connection_for_write() as connection:
            queue = connection.SimpleQueue(settings.CELERY_TASK_DEFAULT_QUEUE)
            result["send_tasks_dispatched"] = queue.qsize()
            queue.queue.delete()
            queue.close()
        result["kafka"]["target_ratio"] = 0.3
        result["load_average_1m"] = os.getloadavg()[0]
    finally:
        Notification.objects.all().delete()
        ProcessedMessage.objects.all().delete()
        DeadLetter.objects.all().delete()
        DepartureAvailability.objects.filter(pk=departure.pk).delete()
        departure.delete()
        tour.delete()
        from django.core.cache import cache

        cache.delete_pattern("processed:*")
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
