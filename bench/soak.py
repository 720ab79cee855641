"""Soak: many bookings from many clients while the brokers restart and processes are killed.

    .venv/bin/python bench/soak.py --bookings 10000 --clients 50

What it does (not part of CI; loopback only, bounded in count and time):

1. Creates (if missing) and migrates its own database, ``tourapp_soak`` on the local PostgreSQL
   (``--database-url`` to change it; the ``tourapp`` role has CREATEDB), and picks names of its
   own for the exchange, topic, consumer group, queues and Redis prefix, so it never consumes
   anyone else's messages.
2. Starts web (gunicorn), a Celery worker, Celery beat and ``run_kafka_consumer`` with the e2e
   harness (``tests/e2e/harness.py``), seeds users and departures (total capacity 95% of the
   bookings, so the last ones sell out: overbooking is tested too).
3. Fires ``--bookings`` one-seat bookings from ``--clients`` threads. At 15/35/55/75% of the
   bookings it restarts RabbitMQ (stop, 5 s, start), restarts Kafka, SIGKILLs the worker and
   restarts it, SIGKILLs the Kafka consumer and restarts it — one fault at a time, so with a
   short run the later faults happen after the last booking, while the backlog drains.
4. Waits for the backlog to drain, then reports one JSON object (stdout and
   ``bench/out/soak-<time>.json``): bookings, delivered per destination, broker-side counts,
   notifications sent, ``lost`` / ``duplicates`` / ``overbooked`` (definitions in
   ``tests/e2e/figures.py``; all must be 0), end-to-end latency p50/p99 (booking ``created_at``
   -> email notification ``sent_at``), peak outbox backlog, drain time (last booking answered and
   last fault recovered -> nothing pending or missing) and the fault timeline; and a PNG plot of
   backlog and latency over time, ``bench/out/soak-<time>.png``. The process logs stay in the
   directory printed at the end.

Exit status 0 when lost = duplicates = overbooked = 0, else 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bookings", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--departures", type=int, default=20)
    parser.add_argument("--database-url", default="postgres://tourapp:tourapp@127.0.0.1:5432/tourapp_soak")
    parser.add_argument("--max-seconds", type=float, default=1800, help="upper bound on the booking phase")
    parser.add_argument("--drain-timeout", type=float, default=600)
    return parser.parse_args()


def _prepare_environment(database_url: str) -> None:
    run = uuid.uuid4().hex[:8]
    os.environ.update(
        {
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "tourapp.settings",
            "EVENTS_EXCHANGE": f"tour_events.soak.{run}",
            "EVENTS_QUEUE_PREFIX": f"soak.{run}.",
            "KAFKA_TOPIC": f"tour_events.soak.{run}",
            "KAFKA_CONSUMER_GROUP": f"tourapp.soak.{run}",
            "REDIS_KEY_PREFIX": f"tourapp.soak.{run}",
            "CELERY_TASK_DEFAULT_QUEUE": f"celery.soak.{run}",
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        }
    )


def _create_and_migrate(database_url: str) -> None:
    import subprocess
    from urllib.parse import urlsplit

    import psycopg

    url = urlsplit(database_url)
    name = url.path.lstrip("/")
    admin = url._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, check=True)


def say(message: str) -> None:
    """A progress line on stderr (stdout carries only the JSON report)."""
    print(f"soak: {message}", file=sys.stderr, flush=True)


class Sampler(threading.Thread):
    """Every second: pending outbox deliveries per destination and notifications not yet sent.

    Every ``PROGRESS_SECONDS`` it also prints a progress line: bookings answered (``answered()``),
    the backlog, and the last fault.
    """

    PROGRESS_SECONDS = 5.0

    def __init__(self, started: float, *, answered: Any = None, faults: list[dict[str, Any]] | None = None) -> None:
        super().__init__(daemon=True)
        self.started = started
        self.samples: list[dict[str, float]] = []
        self.stopping = threading.Event()
        self.answered = answered or (lambda: "")
        self.faults = faults if faults is not None else []
        self._last_line = 0.0

    def _progress(self) -> None:
        now = time.monotonic()
        if not self.samples or now - self._last_line < self.PROGRESS_SECONDS:
            return
        self._last_line = now
        last = self.samples[-1]
        fault = self.faults[-1] if self.faults else None
        fault_text = (
            f", {fault['fault']} {'done' if 'recovered_at' in fault else 'in progress'}" if fault else ", no fault yet"
        )
        say(
            f"{last['t']:.0f} s: {self.answered()}, pending rabbitmq {last['rabbitmq']} kafka {last['kafka']}"
            f"{fault_text}"
        )

    def run(self) -> None:
        from django.db import close_old_connections
        from django.db.models import Count

        from messaging.models import OutboxDelivery

        while not self.stopping.is_set():
            try:
                close_old_connections()
                pending = dict(
                    OutboxDelivery.objects.filter(state="pending")
                    .values_list("destination")
                    .annotate(n=Count("id"))
                    .values_list("destination", "n")
                )
                self.samples.append(
                    {
                        "t": round(time.monotonic() - self.started, 2),
                        "rabbitmq": pending.get("rabbitmq", 0),
                        "kafka": pending.get("kafka", 0),
                    }
                )
                self._progress()
            except Exception:  # a sample may fail while PostgreSQL connections drop; keep sampling
                from django.db import connection

                connection.close()
            self.stopping.wait(1.0)


def _latencies(departure_ids: list[int], started_wall: float) -> list[tuple[float, float]]:
    """(seconds since start, booking created -> email sent) per booking that got its email."""
    from bookings.models import Booking
    from notifications.models import Notification

    created = dict(Booking.objects.filter(departure_id__in=departure_ids).values_list("id", "created_at"))
    sent = Notification.objects.filter(
        booking_id__in=[str(i) for i in created], channel="email", status="sent", event_type="tour.booked"
    ).values_list("booking_id", "sent_at")
    points = []
    for booking_id, sent_at in sent:
        made = created[int(booking_id)]
        points.append((made.timestamp() - started_wall, (sent_at - made).total_seconds()))
    return sorted(points)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _plot(
    path: Path, samples: list[dict[str, float]], latencies: list[tuple[float, float]], faults: list[dict]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    times = [s["t"] for s in samples]
    top.plot(times, [s["rabbitmq"] for s in samples], label="pending to RabbitMQ")
    top.plot(times, [s["kafka"] for s in samples], label="pending to Kafka")
    top.set_ylabel("outbox backlog (deliveries)")
    top.legend(loc="upper left")
    bottom.scatter([p[0] for p in latencies], [p[1] * 1000 for p in latencies], s=2)
    bottom.set_yscale("log")
    bottom.set_ylabel("booking -> email sent (ms)")
    bottom.set_xlabel("seconds since the first booking")
    for fault in faults:
        for axis in (top, bottom):
            axis.axvline(fault["at"], color="red", alpha=0.4, linestyle="--")
        top.annotate(fault["fault"], (fault["at"], 0), rotation=90, fontsize=7, color="red", va="bottom")
    fig.suptitle("tourapp soak: backlog and end-to-end latency under faults")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    args = _parse_args()
    _prepare_environment(args.database_url)
    _create_and_migrate(args.database_url)
    import django

    django.setup()
    import logging

    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # the tap's reconnect chatter while Kafka restarts
    from django.db import close_old_connections

    from tests.e2e.figures import AmqpTap, KafkaTap, wait_for_drain
    from tests.e2e.harness import System, fire_bookings, seed_bookable, services

    capacity = math.ceil(args.bookings * 0.95 / args.departures)
    say(f"seeding {args.clients} users and {args.departures} departures")
    tokens, departure_ids = seed_bookable(
        prefix=f"soak-{uuid.uuid4().hex[:8]}", users=args.clients, departures=args.departures, capacity=capacity
    )
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_dir = Path(tempfile.mkdtemp(prefix="tourapp-soak-"))
    system = System(database_url=args.database_url, log_dir=log_dir, web_workers=3, worker_concurrency=2)
    faults: list[dict[str, Any]] = []
    amqp = kafka = None
    progress = {"n": 0, "done": False}
    say(f"starting web, worker, beat and kafka consumer (logs in {log_dir})")
    try:
        with system:
            amqp, kafka = AmqpTap(system.exchange), KafkaTap(system.topic)
            started, started_wall = time.monotonic(), time.time()
            say(f"system up; {args.bookings} bookings from {args.clients} clients, four faults on the way")
            sampler = Sampler(
                started,
                answered=lambda: (
                    f"{progress['n']}/{args.bookings} bookings answered"
                    if not progress["done"]
                    else "all bookings answered, draining"
                ),
                faults=faults,
            )
            sampler.start()

            def restart_service(name: str) -> None:
                services("stop", name)
                time.sleep(5)  # the outage itself: bookings keep coming meanwhile
                services("start", name)

            def kill_and_restart(name: str) -> None:
                system.kill(name)
                system.start(name)

            schedule = [
                (0.15, "rabbitmq restart", lambda: restart_service("rabbitmq")),
                (0.35, "kafka restart", lambda: restart_service("kafka")),
                (0.55, "worker SIGKILL", lambda: kill_and_restart("worker")),
                (0.75, "kafka consumer SIGKILL", lambda: kill_and_restart("kafka_consumer")),
            ]

            def run_faults() -> None:
                """One fault at a time, each when its share of the bookings was answered (or all were)."""
                for share, label, action in schedule:
                    while progress["n"] < share * args.bookings and not progress["done"]:
                        time.sleep(0.05)
                    faults.append({"fault": label, "at": round(time.monotonic() - started, 2)})
                    say(f"fault: {label}")
                    action()
                    faults[-1]["recovered_at"] = round(time.monotonic() - started, 2)

            def on_progress(n: int) -> None:
                progress["n"] = n

            fault_thread = threading.Thread(target=run_faults, name="faults")
            fault_thread.start()
            burst = fire_bookings(
                system.base_url,
                tokens=tokens,
                departure_ids=departure_ids,
                count=args.bookings,
                clients=args.clients,
                on_progress=on_progress,
                max_seconds=args.max_seconds,
            )
            fired = time.monotonic()
            progress["done"] = True
            fault_thread.join()
            recovered = time.monotonic()  # last booking answered and every fault recovered
            close_old_connections()
            say("bookings and faults done; waiting for every event to drain")
            figures = wait_for_drain(
                "soak",
                departure_ids=departure_ids,
                since=recovered,
                timeout=args.drain_timeout,
                sends=system.sends_path,
                amqp=amqp,
                kafka=kafka,
            )
            sampler.stopping.set()
            sampler.join()
            latencies = _latencies(departure_ids, started_wall)
    finally:
        services("up")
        for tap in (amqp, kafka):
            if tap is not None:
                tap.close()

    values = [latency for _, latency in latencies]
    elapsed = fired - started
    report = {
        **json.loads(figures.json_line()),
        "bookings_requested": args.bookings,
        "clients": args.clients,
        "http_statuses": {str(k): v for k, v in burst.status_counts().items()},
        "booking_phase_seconds": round(elapsed, 1),
        "bookings_per_second": round(len(burst.responses) / elapsed, 1) if elapsed else None,
        "latency_ms_p50": round(_percentile(values, 0.50) * 1000, 1) if values else None,
        "latency_ms_p99": round(_percentile(values, 0.99) * 1000, 1) if values else None,
        "peak_backlog": {d: max((s[d] for s in sampler.samples), default=0) for d in ("rabbitmq", "kafka")},
        "faults": faults,
        "plot": str(OUT / f"soak-{stamp}.png"),
        "logs": str(log_dir),
    }
    _plot(OUT / f"soak-{stamp}.png", sampler.samples, latencies, faults)
    (OUT / f"soak-{stamp}.json").write_text(json.dumps(report, indent=2, default=str))
    print(json.dumps(report, default=str))
    return 0 if (figures.lost, figures.duplicates, figures.overbooked) == (0, 0, 0) else 1


if __name__ == "__main__":
    sys.exit(main())
