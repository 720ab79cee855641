"""Node loss under load: the app on the three-node RabbitMQ and Kafka clusters, one node killed at a time.

    scripts/cluster up
    .venv/bin/python bench/cluster_node_loss.py [--bookings 2000] [--clients 20] [--partition]

What it does (loopback only; bounded: ``--max-seconds`` for the bookings, ``--drain-timeout``
after them; about 3-5 minutes on a 2-core machine):

1. Checks ``scripts/cluster status``; points the application at the cluster by settings only
   (``scripts/cluster env``: three ``;``-separated AMQP URLs for Celery and the events, quorum
   queues with explicit delivery limit and dead-lettering, Celery's queue as a quorum queue, the
   Kafka bootstrap list); creates a throw-away database ``tourapp_cluster_<run>`` (dropped at the
   end) and names of its own (exchange, queues, Celery queue, topic and DLQ topic created with
   replication factor 3 and ``min.insync.replicas=2``, consumer group, Redis prefix).
2. Starts two web processes (gunicorn), two Celery workers, beat and two Kafka consumers (one
   group) with ``bench/cluster_system.py``, and fires at least ``--bookings`` one-seat bookings
   from ``--clients`` threads, alternating the two web processes, paced at ``--rate`` per second
   so that the load spans the faults (unpaced, 20 clients book far faster than this machine then
   sends the notifications, and the run measures the drain of a backlog instead), and on at
   that pace until every fault below is over.
3. Faults, one at a time, each held ``--hold`` seconds, then the node or process started again:
   SIGKILL the RabbitMQ node leading the notification handler's quorum queue; SIGKILL the Kafka
   broker leading partition 0 of the topic; SIGKILL one worker; SIGKILL one Kafka consumer. With
   ``--partition``: then partition the RabbitMQ node leading that queue from the two others
   (``bench/cluster_partition.py``) while three confirmed publishers (one homed on each node)
   write into a quorum queue of their own; heal; read that queue to the end.
4. Waits for the backlog to drain and prints one JSON report (also ``bench/out/cluster-<time>.json``):
   bookings, delivered per destination, notifications sent, availability applied, lost,
   duplicates, overbooked (definitions in ``tests/e2e/figures.py``; all must be 0), per fault the
   longest time each client made no progress (its failover, sampled every 0.25 s while bookings
   keep arriving: an upper bound that includes waiting for the stage before it), the time each
   node took to come back, and the drain time (last booking answered and last fault over ->
   nothing pending or missing).

Exit status 0 when lost = duplicates = overbooked = 0 (and, with ``--partition``, no
acknowledged message lost), else 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bookings", type=int, default=2000, help="at least this many bookings")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--departures", type=int, default=20)
    parser.add_argument(
        "--rate", type=float, default=12.0, help="bookings per second in all, so they span the faults (0: unpaced)"
    )
    parser.add_argument("--hold", type=float, default=8.0, help="seconds a node or process stays dead")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds between one recovery and the next fault")
    parser.add_argument("--partition", action="store_true", help="also partition one RabbitMQ node")
    parser.add_argument("--partition-seconds", type=float, default=20.0)
    parser.add_argument("--max-seconds", type=float, default=300.0, help="upper bound on the booking phase")
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--keep-database", action="store_true")
    return parser.parse_args()


def _cluster_env() -> dict[str, str]:
    from bench.cluster_system import cluster

    env = {}
    for line in cluster("env").splitlines():
        key, _, value = line.partition("=")
        env[key] = shlex.split(value)[0] if value else ""
    return env


def _prepare_environment(run: str) -> str:
    base = os.environ.get("DATABASE_URL", "postgres://tourapp:tourapp@127.0.0.1:5432/tourapp")
    database_url = base.rsplit("/", 1)[0] + f"/tourapp_cluster_{run}"
    os.environ.update(
        {
            **_cluster_env(),
            "DATABASE_URL": database_url,
            "DJANGO_SETTINGS_MODULE": "tourapp.settings",
            "EVENTS_EXCHANGE": f"tour_events.cluster.{run}",
            "EVENTS_QUEUE_PREFIX": f"cluster.{run}.",
            "KAFKA_TOPIC": f"tour_events.cluster.{run}",
            "KAFKA_DLQ_TOPIC": f"tour_events.cluster.{run}.dlq",
            "KAFKA_CONSUMER_GROUP": f"tourapp.cluster.{run}",
            "REDIS_KEY_PREFIX": f"tourapp.cluster.{run}",
            "CELERY_TASK_DEFAULT_QUEUE": f"celery.cluster.{run}",
            "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            # The web processes run with production's manifest storage: collected into a directory of the run's own.
            "STATIC_ROOT": tempfile.mkdtemp(prefix="tourapp-cluster-static-"),
        }
    )
    return database_url


def _admin_url(database_url: str) -> str:
    return database_url.rsplit("/", 1)[0] + "/postgres"


def _create_and_migrate(database_url: str) -> None:
    import subprocess

    import psycopg

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(_admin_url(database_url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, check=True)
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, check=True)


def _drop_database(database_url: str) -> None:
    import psycopg

    name = database_url.rsplit("/", 1)[1]
    with psycopg.connect(_admin_url(database_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Load:
    """``clients`` threads booking one seat each, alternating the web processes, until told to stop."""

    def __init__(self, base_urls: list[str], tokens: list[str], departure_ids: list[int], *, clients: int) -> None:
        self.base_urls, self.tokens, self.departure_ids, self.clients = base_urls, tokens, departure_ids, clients
        self.statuses: Counter[int] = Counter()
        self.answered = 0
        self.lock = threading.Lock()
        self.counter = 0

    def run(self, *, at_least: int, keep_going: threading.Event, max_seconds: float, rate: float) -> None:
        """Book ``at_least`` times, and on while ``keep_going``, at ``rate`` per second in all (0: unpaced)."""
        from concurrent.futures import ThreadPoolExecutor

        from tests.e2e.harness import http_request

        started = time.monotonic()
        deadline = started + max_seconds

        def loop() -> None:
            while time.monotonic() < deadline:
                with self.lock:
                    i = self.counter
                    if i >= at_least and not keep_going.is_set():
                        return
                    self.counter += 1
                if rate > 0:  # paced: the load spans the whole fault schedule instead of ending before it
                    time.sleep(max(0.0, started + i / rate - time.monotonic()))
                body = {
                    "departure_id": self.departure_ids[i % len(self.departure_ids)],
                    "seats": 1,
                    "tier": ("standard", "premium")[i % 2],
                }
                try:
                    status = http_request(
                        self.base_urls[i % len(self.base_urls)],
                        "POST",
                        "/api/bookings/",
                        body=body,
                        token=self.tokens[i % len(self.tokens)],
                    ).status
                except OSError:
                    status = 0
                with self.lock:
                    self.statuses[status] += 1
                    self.answered += 1

        with ThreadPoolExecutor(max_workers=self.clients) as pool:
            for future in [pool.submit(loop) for _ in range(self.clients)]:
                future.result()


def _partition_phase(args: argparse.Namespace, run: str, minority: int) -> dict[str, Any]:
    from kombu import Queue

    from bench.cluster_partition import (
        ConfirmedPublisher,
        partition_heal,
        partition_start,
        queue_read_all,
        rabbit_running,
    )
    from messaging.amqp import amqp_urls, events_connection

    urls = amqp_urls(os.environ["EVENTS_AMQP_URL"])
    queue = f"cluster.{run}.partition-check"
    with events_connection() as conn:
        Queue(queue, durable=True, queue_arguments={"x-queue-type": "quorum"})(conn.channel()).declare()
    others = [n for n in (1, 2, 3) if n != minority]
    publishers = [ConfirmedPublisher(f"via-rabbit{n}", urls[n - 1 :] + urls[: n - 1], queue) for n in (1, 2, 3)]
    for publisher in publishers:
        publisher.start()
    time.sleep(2)  # steady state before the partition (a fixed lead-in, not a wait for a condition)
    started = time.monotonic()
    partition_start(minority, others)
    paused_after = None
    while time.monotonic() - started < args.partition_seconds:
        if paused_after is None and not rabbit_running(minority):
            paused_after = round(time.monotonic() - started, 2)
        time.sleep(0.5)
    healed = time.monotonic()
    partition_heal(minority, others)
    resumed_after = None
    while time.monotonic() - healed < 120:
        if rabbit_running(minority):
            resumed_after = round(time.monotonic() - healed, 2)
            break
        time.sleep(0.5)
    time.sleep(2)
    for publisher in publishers:
        publisher.stopping.set()
    for publisher in publishers:
        publisher.join(timeout=30)
    stored = queue_read_all(urls, queue)
    present = Counter(stored)
    acked = set().union(*(p.acked for p in publishers))
    unconfirmed = set().union(*(p.unconfirmed for p in publishers))
    with events_connection() as conn:
        Queue(queue, no_declare=True)(conn.channel()).delete()
    return {
        "minority_node": f"rabbit{minority}",
        "partition_seconds": args.partition_seconds,
        "minority_paused_after_seconds": paused_after,
        "minority_resumed_after_heal_seconds": resumed_after,
        "acknowledged": len(acked),
        "acknowledged_lost": len(acked - set(present)),
        "unconfirmed_but_stored": len(unconfirmed & set(present)),
        "stored_twice": sum(1 for n in present.values() if n > 1),
        "publish_errors": {p.label: p.errors for p in publishers},
        "publisher_failover_seconds": {p.label: p.failovers for p in publishers},
    }


def main() -> int:
    args = _parse_args()
    run = uuid.uuid4().hex[:6]
    from bench.cluster_system import cluster

    cluster("status")
    database_url = _prepare_environment(run)
    _create_and_migrate(database_url)
    import django

    django.setup()
    import logging

    logging.getLogger("kafka").setLevel(logging.CRITICAL)  # the taps' reconnect chatter while a broker is down
    from django.conf import settings
    from django.db import close_old_connections

    from bench.cluster_system import (
        PROGRESS_FIELDS,
        ClusterSystem,
        ProgressSampler,
        QuorumAmqpTap,
        amqp_exchanges_delete,
        amqp_queues_delete,
        kafka_partition_leader,
        kafka_topics_create_replicated,
        kafka_topics_delete,
        progress_counts,
        rabbit_leader,
        write_json,
    )
    from tests.e2e.figures import KafkaTap, wait_for_drain
    from tests.e2e.harness import seed_bookable

    bootstrap = list(settings.KAFKA_BOOTSTRAP_SERVERS)
    kafka_topics_create_replicated(bootstrap, (settings.KAFKA_TOPIC, 3), (settings.KAFKA_DLQ_TOPIC, 1))
    capacity = math.ceil(args.bookings * 4 / args.departures)  # ample: this run is about brokers, not sell-outs
    tokens, departure_ids = seed_bookable(
        prefix=f"cluster-{run}", users=args.clients, departures=args.departures, capacity=capacity
    )
    log_dir = Path(tempfile.mkdtemp(prefix="tourapp-cluster-"))
    system = ClusterSystem(database_url=database_url, log_dir=log_dir, web_workers=2, worker_concurrency=2)
    notification_queue = f"{settings.EVENTS_QUEUE_PREFIX}notifications.tour_events"
    faults: list[dict[str, Any]] = []
    partition: dict[str, Any] | None = None
    fault_errors: list[str] = []
    amqp = kafka = None
    figures = None
    load = None
    t0 = time.monotonic()
    try:
        with system:
            system.start_replicas()
            amqp, kafka = QuorumAmqpTap(system.exchange), KafkaTap(system.topic)
            sampler = ProgressSampler()
            sampler.start()
            load = Load(system.base_urls, tokens, departure_ids, clients=args.clients)
            keep_going = threading.Event()
            keep_going.set()

            def node_fault(label: str, node: str) -> None:
                fault = {"fault": label, "node": node, "at": time.monotonic()}
                faults.append(fault)
                cluster("kill", node)
                time.sleep(args.hold)  # the outage itself: bookings keep coming meanwhile
                fault["restart_at"] = time.monotonic()
                cluster("start", node)
                fault["ready_at"] = time.monotonic()

            def process_fault(label: str, name: str) -> None:
                fault = {"fault": label, "node": name, "at": time.monotonic()}
                faults.append(fault)
                system.kill(name)
                time.sleep(args.hold)
                fault["restart_at"] = time.monotonic()
                system.start(name, timeout=120)
                fault["ready_at"] = time.monotonic()

            def run_faults() -> None:
                nonlocal partition
                try:
                    while load.answered < args.bookings * 0.1:
                        time.sleep(0.05)
                    node_fault(
                        "rabbitmq node leading the notification queue SIGKILLed", rabbit_leader(notification_queue)
                    )
                    time.sleep(args.settle)
                    node_fault(
                        "kafka broker leading partition 0 SIGKILLed", kafka_partition_leader(bootstrap, system.topic)
                    )
                    time.sleep(args.settle)
                    process_fault("celery worker SIGKILLed", "worker")
                    time.sleep(args.settle)
                    process_fault("kafka consumer SIGKILLed", "kafka_consumer")
                    time.sleep(args.settle)
                    if args.partition:
                        minority = int(rabbit_leader(notification_queue).removeprefix("rabbit"))
                        fault = {"fault": "rabbitmq node partitioned from the others", "node": f"rabbit{minority}"}
                        fault["at"] = time.monotonic()
                        faults.append(fault)
                        partition = _partition_phase(args, run, minority)
                        fault["restart_at"] = fault["ready_at"] = time.monotonic()
                        time.sleep(args.settle)
                except Exception as exc:  # reported and fails the run; the load then stops
                    fault_errors.append(f"{type(exc).__name__}: {exc}")
                finally:
                    keep_going.clear()

            fault_thread = threading.Thread(target=run_faults, name="faults", daemon=True)
            started = time.monotonic()
            fault_thread.start()
            load.run(at_least=args.bookings, keep_going=keep_going, max_seconds=args.max_seconds, rate=args.rate)
            fired = time.monotonic()
            keep_going.clear()
            fault_thread.join(timeout=600)
            recovered = time.monotonic()
            close_old_connections()
            figures = wait_for_drain(
                "cluster_node_loss",
                departure_ids=departure_ids,
                since=recovered,
                timeout=args.drain_timeout,
                sends=system.sends_path,
                amqp=amqp,
                kafka=kafka,
            )
            sampler.stopping.set()
            sampler.join(timeout=10)
            final_counts = progress_counts()
            members = system.kafka_members_count()
            alive = {name: proc.alive() for name, proc in system.processes.items()}
    finally:
        if args.partition:
            from bench.cluster_partition import partition_heal_everywhere

            with contextlib.suppress(Exception):
                partition_heal_everywhere()
        with contextlib.suppress(Exception):
            cluster("up", timeout=600)  # every node back, whatever happened above
        for tap in (amqp, kafka):
            if tap is not None:
                with contextlib.suppress(Exception):
                    tap.close()
        with contextlib.suppress(Exception):
            amqp_queues_delete(_run_queue_names(settings))
        with contextlib.suppress(Exception):
            exchange = settings.EVENTS_EXCHANGE
            amqp_exchanges_delete([exchange, f"{exchange}.dlx", settings.CELERY_TASK_DEFAULT_QUEUE])
        with contextlib.suppress(Exception):
            kafka_topics_delete(list(settings.KAFKA_BOOTSTRAP_SERVERS), settings.KAFKA_TOPIC, settings.KAFKA_DLQ_TOPIC)
        shutil.rmtree(os.environ["STATIC_ROOT"], ignore_errors=True)
        if not args.keep_database:
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
                _drop_database(database_url)

    assert figures is not None and load is not None
    timeline = []
    for i, fault in enumerate(faults):
        window_end = faults[i + 1]["at"] if i + 1 < len(faults) else fired
        restart_at, ready_at = fault.get("restart_at"), fault.get("ready_at")  # missing: the fault step failed
        timeline.append(
            {
                "fault": fault["fault"],
                "node": fault["node"],
                "at_seconds": round(fault["at"] - started, 2),
                "down_seconds": round(restart_at - fault["at"], 2) if restart_at else None,
                "restart_to_ready_seconds": round(ready_at - restart_at, 2) if ready_at and restart_at else None,
                "longest_stall_seconds": {
                    field: sampler.longest_stall(field, start=fault["at"], end=window_end) for field in PROGRESS_FIELDS
                },
            }
        )
    elapsed = fired - started
    report = {
        **json.loads(figures.json_line()),
        "availability_applied": final_counts["kafka_consumer"],
        "bookings_requested_at_least": args.bookings,
        "clients": args.clients,
        "http_statuses": {str(k): v for k, v in sorted(load.statuses.items())},
        "booking_phase_seconds": round(elapsed, 1),
        "bookings_per_second": round(load.answered / elapsed, 1) if elapsed else None,
        "pace_bookings_per_second": args.rate,
        "faults": timeline,
        "fault_errors": fault_errors,
        "partition": partition,
        "kafka_group_members_at_end": members,
        "processes_alive_at_end": alive,
        "total_seconds": round(time.monotonic() - t0, 1),
        "logs": str(log_dir),
    }
    stamp = time.strftime("%Y%m%d-%H%M%S")
    write_json(OUT / f"cluster-{stamp}.json", report)
    print(json.dumps(report, default=str))
    ok = (figures.lost, figures.duplicates, figures.overbooked) == (0, 0, 0) and not fault_errors
    if partition is not None:
        ok = ok and partition["acknowledged_lost"] == 0
    return 0 if ok else 1


def _run_queue_names(settings: Any) -> list[str]:
    """The run's queues: each RabbitMQ handler's main, DLQ and retry queues, and Celery's."""
    from messaging.consumers.rabbitmq_topology import queue_name_for, retry_queue_names
    from messaging.registry import TRANSPORT_RABBITMQ, handlers_for_transport

    names = [settings.CELERY_TASK_DEFAULT_QUEUE]
    for handler in handlers_for_transport(TRANSPORT_RABBITMQ):
        main = queue_name_for(handler.name)
        names += [main, f"{main}.dlq", *retry_queue_names(handler.name)]
    return names


if __name__ == "__main__":
    sys.exit(main())
