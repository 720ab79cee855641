"""Outbox relay throughput against raw publishers, on the real brokers. Prints one JSON object.

    .venv/bin/python bench/bench_relay.py [--events 20000] [--rounds 3] [--backlog 100000] [--batch-size N]

1. Pre-fills the outbox (bulk insert) with ``--events`` events in a dedicated database
   (``tourapp_bench``, created and migrated if missing), so a running ``make run`` worker never
   sees them, and a unique exchange and topic (deleted at the end).
2. RabbitMQ and Kafka, each: publishes the same messages with a raw publisher (py-amqp with
   pipelined confirms: every message published, then every confirm awaited, unless
   ``--raw-window``; kafka-python with the relay's producer settings, one flush at the end), then
   drains the outbox with the relay (``outbox_relay_drain``, the code the Celery tasks run);
   ``--rounds`` times, alternating, and reports the medians and their ratio (other processes on
   a shared 2-core machine make single runs noisy).
3. Samples the process RSS every 20 ms while the relay drains (memory must stay flat).
4. With ``--backlog N``: refills N events and reports the time to drain each destination.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RUN = uuid.uuid4().hex[:8]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tourapp.settings")
os.environ["EVENTS_EXCHANGE"] = f"tour_events.bench.{RUN}"
os.environ["DEBUG"] = "false"  # as in production: DEBUG keeps and times every SQL statement
os.environ["KAFKA_TOPIC"] = f"tour_events.bench.{RUN}"
BENCH_DB = os.environ.get("BENCH_DATABASE_NAME", "tourapp_bench")


def _database_url() -> str:
    base = os.environ.get("DATABASE_URL", "postgres://tourapp:tourapp@127.0.0.1:5432/tourapp")
    return base.rsplit("/", 1)[0] + f"/{BENCH_DB}"


def _ensure_database() -> None:
    import psycopg

    admin_url = os.environ.get("DATABASE_URL", "postgres://tourapp:tourapp@127.0.0.1:5432/tourapp")
    with psycopg.connect(admin_url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(_rss_mb())
            self._stop.wait(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _payload(n: int, event_type: str) -> dict:
    return {
        "occurredAt": "2026-11-27T10:00:00Z",
        "bookingId": n,
        "tourId": 7,
        "departureId": 42,
        "userId": 1000 + n % 500,
        "bookingDate": "2026-11-27T10:00:00Z",
        "status": "confirmed",
        "seats": 2,
        "tier": "standard",
        "totalPrice": str(Decimal("199.99")),
        "currency": "EUR",
        "userEmail": f"user{n}@example.com",
        "phone": "+33600000000",
        "tourName": "Mont Saint-Michel at dawn",
    }


def prefill(count: int) -> float:
    """Bulk-insert ``count`` events (one booking each) and their deliveries; returns seconds."""
    from django.conf import settings
    from django.db import transaction

    from bookings.event_schema import TOUR_BOOKED
    from messaging.events import HEADER_CORRELATION_ID, HEADER_EVENT_ID, HEADER_EVENT_TYPE
    from messaging.models import OutboxDelivery, OutboxEvent

    started = time.perf_counter()
    chunk = 2000
    for offset in range(0, count, chunk):
        events = []
        for n in range(offset, min(count, offset + chunk)):
            event_id = uuid.uuid4()
            correlation_id = uuid.uuid4().hex
            events.append(
                OutboxEvent(
                    event_id=event_id,
                    aggregate_type="booking",
                    aggregate_id=str(n),
                    event_type=TOUR_BOOKED,
                    routing_key="tour.booked.standard",
                    message_key=str(n),
                    payload={"eventId": str(event_id), "eventType": TOUR_BOOKED, **_payload(n, TOUR_BOOKED)},
                    headers={
                        HEADER_EVENT_TYPE: TOUR_BOOKED,
                        HEADER_EVENT_ID: str(event_id),
                        HEADER_CORRELATION_ID: correlation_id,
                    },
                    correlation_id=correlation_id,
                )
            )
        with transaction.atomic():
            OutboxEvent.objects.bulk_create(events)
            OutboxDelivery.objects.bulk_create(
                OutboxDelivery(event=e, destination=d, aggregate_key=f"booking:{e.aggregate_id}")
                for e in events
                for d in settings.OUTBOX_DESTINATIONS
            )
    return time.perf_counter() - started


def load_messages(destination: str) -> list:
    """The exact messages the relay will send (same bodies, headers, keys), for the raw publishers."""
    from messaging.models import OutboxDelivery
    from messaging.publishers.base import OutboundMessage

    rows = (
        OutboxDelivery.objects.filter(destination=destination)
        .select_related("event")
        .order_by("id")
        .iterator(chunk_size=2000)
    )
    return [
        OutboundMessage(
            delivery_id=d.id,
            event_id=str(d.event.event_id),
            event_type=d.event.event_type,
            routing_key=d.event.routing_key,
            message_key=d.event.message_key,
            body=json.dumps(d.event.payload).encode(),
            headers=d.event.headers,
            correlation_id=d.event.correlation_id,
        )
        for d in rows
    ]


def raw_amqp(messages: list, window: int) -> float:
    """py-amqp, publisher confirms pipelined in windows: the ceiling the relay is measured against."""
    from django.conf import settings

    from messaging.amqp import events_connection
    from messaging.publishers.rabbitmq import amqp_message

    conn = events_connection(heartbeat=0)
    conn.ensure_connection(max_retries=1)
    channel = conn.channel()
    channel.confirm_select()
    pending: set[int] = set()

    def on_ack(tag: int, multiple: bool) -> None:
        if multiple:
            pending.difference_update([t for t in pending if t <= tag])
        else:
            pending.discard(tag)

    channel.events["basic_ack"].add(on_ack)
    channel.events["basic_nack"].add(on_ack)
    channel.events["basic_return"].add(lambda *args: None)
    tag = 0
    started = time.perf_counter()
    for offset in range(0, len(messages), window):
        for m in messages[offset : offset + window]:
            tag += 1
            pending.add(tag)
            channel.basic_publish(
                amqp_message(m),  # the very message the relay sends
                settings.EVENTS_EXCHANGE,
                m.routing_key,
                mandatory=True,
            )
        while pending:
            conn.connection.drain_events(timeout=30)
    elapsed = time.perf_counter() - started
    conn.release()
    return elapsed


def raw_kafka(messages: list) -> float:
    """kafka-python with the relay's producer settings (acks=all, idempotent), one flush at the end."""
    from django.conf import settings
    from kafka import KafkaProducer

    from messaging.publishers.kafka import kafka_producer_config

    producer = KafkaProducer(**kafka_producer_config())
    producer.send(settings.KAFKA_TOPIC, key=b"warm-up", value=b"{}").get(timeout=30)
    started = time.perf_counter()
    futures = [
        producer.send(
            settings.KAFKA_TOPIC,
            key=m.message_key.encode(),
            value=m.body,
            headers=[(k, v.encode()) for k, v in m.headers.items()],
        )
        for m in messages
    ]
    producer.flush(timeout=120)
    elapsed = time.perf_counter() - started
    failed = sum(1 for f in futures if not f.succeeded())
    producer.close()
    if failed:
        raise RuntimeError(f"raw kafka: {failed} sends failed")
    return elapsed


def relay_drain(destination: str, batch_size: int) -> dict:
    from messaging.relay.drain import outbox_relay_drain

    before = _rss_mb()
    with RssSampler() as rss:
        started = time.perf_counter()
        result = outbox_relay_drain(destination=destination, batch_size=batch_size, time_budget_seconds=3600)
        elapsed = time.perf_counter() - started
    if result.paused or result.failed:
        raise RuntimeError(f"relay drain failed: {result}")
    delivered, batches = result.delivered, result.batches
    return {
        "delivered": delivered,
        "batches": batches,
        "seconds": round(elapsed, 3),
        "rate_per_s": round(delivered / elapsed),
        "rss_mb_before": round(before, 1),
        "rss_mb_peak": round(max(rss.samples, default=before), 1),
        "rss_mb_after": round(_rss_mb(), 1),
    }


def repend(destination: str) -> None:
    """Make a destination's deliveries pending again for another round (then vacuum, outside timing)."""

    from messaging.models import OutboxDelivery

    OutboxDelivery.objects.filter(destination=destination).update(
        state="pending", attempts=0, next_attempt_at=None, delivered_at=None
    )
    vacuum()


def vacuum() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) messaging_outboxdelivery")
        cursor.execute("VACUUM (ANALYZE) messaging_outboxevent")


def reset_outbox() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE messaging_outboxdelivery, messaging_outboxevent")


def warm_up_relay_publisher(destination: str) -> None:
    """Connect the relay's publisher (and fetch topic metadata) and its cache outside the timed drain,
    as raw connects before its clock starts: a worker process pays these once, not per drain."""
    from messaging.publishers.base import OutboundMessage
    from messaging.relay.pause import outbox_destination_is_paused
    from messaging.relay.publisher_cache import outbox_publisher

    outbox_destination_is_paused(destination=destination)

    warm = OutboundMessage(0, str(uuid.uuid4()), "tour.booked", "tour.booked.standard", "warm-up", b"{}", {}, "")
    outbox_publisher(destination).publish([warm])


class Topology:
    """Unique exchange + a bound durable queue (so ``mandatory`` messages are routable), unique topic."""

    def __init__(self) -> None:
        from django.conf import settings

        from messaging.amqp import events_connection, events_exchange
        from tests.support.kafka import kafka_topics_create

        self.queue = f"bench.{RUN}"
        self.conn = events_connection()
        self.conn.ensure_connection(max_retries=1)
        self.channel = self.conn.channel()
        events_exchange()(self.channel).declare()
        self.channel.queue_declare(self.queue, durable=True, auto_delete=False)
        self.channel.queue_bind(self.queue, settings.EVENTS_EXCHANGE, "#")
        kafka_topics_create(settings.KAFKA_TOPIC, partitions=3)

    def purge_queue(self) -> None:
        self.channel.queue_purge(self.queue)

    def delete(self) -> None:
        """Best effort, each part on its own: a broker restarted by someone else must not leave the rest behind."""
        from django.conf import settings

        from messaging.amqp import events_connection
        from tests.support.kafka import kafka_topics_delete

        with contextlib.suppress(Exception), events_connection() as conn:
            channel = conn.channel()
            channel.queue_delete(self.queue)
            channel.exchange_delete(settings.EVENTS_EXCHANGE)
        with contextlib.suppress(Exception):
            self.conn.release()
        with contextlib.suppress(Exception):
            kafka_topics_delete(settings.KAFKA_TOPIC)


def _say(message: str) -> None:
    """A progress line on stderr (stdout carries only the JSON report)."""
    print(f"[{Path(__file__).stem} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--backlog", type=int, default=0, help="also time the drain of a backlog of this size")
    parser.add_argument("--batch-size", type=int, default=None, help="relay batch (default OUTBOX_BATCH_SIZE)")
    parser.add_argument("--destinations", nargs="+", default=["rabbitmq", "kafka"], choices=["rabbitmq", "kafka"])
    parser.add_argument(
        "--raw-window", type=int, default=0, help="raw AMQP confirm window (default: all messages, then wait)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="alternating raw/relay rounds; medians are reported")
    args = parser.parse_args()

    _ensure_database()
    os.environ["DATABASE_URL"] = _database_url()
    import logging

    import django

    django.setup()
    logging.getLogger("messaging").setLevel(logging.WARNING)
    from django.conf import settings
    from django.core.management import call_command

    from messaging.relay.publisher_cache import outbox_publishers_close

    call_command("migrate", verbosity=0)
    batch = args.batch_size or settings.OUTBOX_BATCH_SIZE
    import kafka.record.util as kafka_crc

    report: dict = {
        "events": args.events,
        "batch_size": batch,
        "kafka_crc32c_native": kafka_crc._crc32c.__module__ != "kafka.record._crc32c",
        "rabbitmq": {},
        "kafka": {},
    }
    topology = Topology()
    try:
        reset_outbox()
        _say(f"prefilling the outbox with {args.events} events")
        report["prefill_seconds"] = round(prefill(args.events), 2)
        vacuum()
        raws = {"rabbitmq": lambda m: raw_amqp(m, args.raw_window or len(m)), "kafka": raw_kafka}
        for destination in args.destinations:
            raw = raws[destination]
            messages = load_messages(destination)
            warm_up_relay_publisher(destination)
            raw_rates, relay_runs = [], []
            # Raw and relay alternate, so load from other processes on this machine hits both alike.
            for round_number in range(args.rounds):
                if round_number:
                    repend(destination)
                _say(f"{destination} round {round_number + 1}/{args.rounds}: raw client")
                raw_rates.append(args.events / raw(messages))
                topology.purge_queue()
                _say(f"{destination} round {round_number + 1}/{args.rounds}: relay ({raw_rates[-1]:.0f}/s raw)")
                relay_runs.append(relay_drain(destination, batch))
                topology.purge_queue()
                _say(f"{destination} round {round_number + 1}/{args.rounds}: {relay_runs[-1]['rate_per_s']}/s relay")
            del messages
            raw_rate = statistics.median(raw_rates)
            relay = sorted(relay_runs, key=lambda r: r["rate_per_s"])[len(relay_runs) // 2]
            report[destination] = {
                "raw_rate_per_s": round(raw_rate),
                "raw_rates_per_round": [round(r) for r in raw_rates],
                "relay": relay,
                "relay_rates_per_round": [r["rate_per_s"] for r in relay_runs],
                "relay_over_raw": round(relay["rate_per_s"] / raw_rate, 3),
                # each relay round against the raw round just before it (same load on the machine)
                "relay_over_raw_paired_median": round(
                    statistics.median(r["rate_per_s"] / w for r, w in zip(relay_runs, raw_rates, strict=True)), 3
                ),
            }
        for destination, target in (("rabbitmq", 0.8), ("kafka", 0.7)):
            report[destination]["target_ratio"] = target
        if args.backlog:
            reset_outbox()
            prefill(args.backlog)
            vacuum()
            backlog = {"events": args.backlog}
            for destination in settings.OUTBOX_DESTINATIONS:
                _say(f"draining a backlog of {args.backlog} to {destination}")
                drained = relay_drain(destination, batch)
                topology.purge_queue()
                backlog[destination] = {
                    k: drained[k] for k in ("seconds", "rate_per_s", "rss_mb_before", "rss_mb_peak")
                }
            backlog["total_seconds"] = round(sum(backlog[d]["seconds"] for d in settings.OUTBOX_DESTINATIONS), 2)
            report["backlog"] = backlog
    finally:
        outbox_publishers_close()
        reset_outbox()
        topology.delete()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
