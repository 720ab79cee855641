"""The pieces of ``bench/cluster_node_loss.py``: the app twice over, the cluster's controls, probes.

- :class:`ClusterSystem`: the e2e harness's :class:`~tests.e2e.harness.System` (web, worker,
  beat, Kafka consumer) plus a second web, a second worker and a second Kafka consumer (same
  group), all with the caller's environment (the cluster settings);
- :func:`cluster`: ``scripts/cluster`` (kill / start a node, leader of a quorum queue);
- :class:`QuorumAmqpTap`: the harness's AMQP tap as a quorum queue, so the node holding it can die;
- :class:`ProgressSampler`: every 0.25 s, how far each client of the brokers has got (counted in
  the database), from which the longest stall after each fault is measured.

Needs a configured Django. Loopback only.
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.e2e.figures import AmqpTap
from tests.e2e.harness import ROOT, ManagedProcess, System, free_port, http_request
from tests.support.waiting import wait_until

REPLICAS = {"web2": "web", "worker2": "worker", "kafka_consumer2": "kafka_consumer"}


@dataclass
class ClusterSystem(System):
    """web x2, worker x2, beat, Kafka consumer x2 (one group)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.port2 = free_port()
        self.base_urls = [self.base_url, f"http://127.0.0.1:{self.port2}"]
        for name, kind in REPLICAS.items():
            original = self.processes[kind]
            argv = list(original.argv)
            if kind == "web":
                argv[argv.index(f"127.0.0.1:{self.port}")] = f"127.0.0.1:{self.port2}"
            if kind == "worker":
                argv[argv.index(f"{self.node}@%h")] = f"{self.node}-2@%h"
            self.processes[name] = ManagedProcess(name, argv, original.env, self.log_dir / f"{name}.log")

    def start_replicas(self, timeout: float = 120) -> None:
        for name in REPLICAS:
            self.start(name, timeout=timeout)

    def wait_ready(self, name: str, *, timeout: float, members_before: set[str] | None = None) -> None:
        if name != "web2":
            super().wait_ready(name, timeout=timeout, members_before=members_before)
            return
        proc = self.processes[name]

        def ready() -> bool:
            assert proc.alive(), f"{name} exited"
            return http_request(self.base_urls[1], "GET", "/admin/login/", timeout=5).status < 500

        wait_until(ready, timeout=timeout, what=f"{name} to be ready", interval=0.3, ignoring=(OSError,))

    def kafka_members_count(self) -> int:
        return len(self._kafka_members())


def cluster(*args: str, timeout: float = 240) -> str:
    """Run ``scripts/cluster ARGS`` and return its stdout (raises on failure)."""
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "cluster"), *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/cluster {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def rabbit_leader(queue: str) -> str:
    """``rabbitN`` of the node leading quorum queue ``queue``."""
    node = cluster("leader", queue).strip()
    if not node:
        raise RuntimeError(f"no quorum queue {queue!r} (or no leader) in the cluster")
    return node.split("@", 1)[0]


def kafka_partition_leader(bootstrap: list[str], topic: str, partition: int = 0) -> str:
    """``kafkaN`` of the broker leading ``topic``'s ``partition``."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        (meta,) = admin.describe_topics([topic])
    finally:
        admin.close()
    (part,) = [p for p in meta["partitions"] if p["partition"] == partition]
    return f"kafka{part['leader']}"


def kafka_topics_create_replicated(bootstrap: list[str], *topics: tuple[str, int]) -> None:
    """Create topics with replication factor 3, ``min.insync.replicas=2``, no unclean election."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    configs = {"min.insync.replicas": "2", "unclean.leader.election.enable": "false"}
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        admin.create_topics([NewTopic(name, partitions, 3, topic_configs=dict(configs)) for name, partitions in topics])
    finally:
        admin.close()


def kafka_topics_delete(bootstrap: list[str], *topics: str) -> None:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        admin.delete_topics(list(topics))
    finally:
        admin.close()


def amqp_queues_delete(names: list[str]) -> None:
    """Delete the run's queues (quorum queues keep a log on every node until deleted)."""
    from kombu import Queue

    from messaging.amqp import events_connection

    with events_connection() as conn:
        channel = conn.channel()
        for name in names:
            try:
                Queue(name, no_declare=True)(channel).delete()
            except Exception:
                channel = conn.channel()
                continue


def amqp_exchanges_delete(names: list[str]) -> None:
    """Delete the run's exchanges (best effort, like :func:`amqp_queues_delete`)."""
    from kombu import Exchange

    from messaging.amqp import events_connection

    with events_connection() as conn:
        channel = conn.channel()
        for name in names:
            try:
                Exchange(name)(channel).delete()
            except Exception:  # best effort clean-up: a missing exchange closes the channel
                channel = conn.channel()
                continue


class QuorumAmqpTap(AmqpTap):
    """:class:`AmqpTap` on a quorum queue (a classic queue dies with the node that holds it)."""

    def __init__(self, exchange: str) -> None:
        from kombu import Exchange, Queue

        from messaging.amqp import events_connection

        self.name = f"cluster-tap.{uuid.uuid4().hex[:8]}"
        self.seen = Counter()
        self.messages = {}
        self.exchange = Exchange(exchange, type="topic", durable=True)
        self.queue = Queue(
            self.name,
            self.exchange,
            routing_key="#",
            durable=True,
            auto_delete=False,
            queue_arguments={"x-queue-type": "quorum"},
        )
        self._connection = events_connection
        with events_connection() as conn:
            self.queue(conn.channel()).declare()


# ----------------------------------------------------------------------------- progress
PROGRESS_FIELDS = (
    "bookings",
    "relay_to_rabbitmq",
    "relay_to_kafka",
    "rabbitmq_consumer",
    "celery_workers",
    "kafka_consumer",
)


def progress_counts() -> dict[str, int]:
    """How far each client has got: one number each, all from this run's database."""
    from django.db.models import Sum

    from availability.models import DepartureAvailability
    from bookings.models import Booking
    from messaging.models import OutboxDelivery
    from notifications.models import Notification

    delivered = OutboxDelivery.objects.filter(state="delivered")
    return {
        "bookings": Booking.objects.count(),
        "relay_to_rabbitmq": delivered.filter(destination="rabbitmq").count(),
        "relay_to_kafka": delivered.filter(destination="kafka").count(),
        "rabbitmq_consumer": Notification.objects.count(),  # written by the RabbitMQ event consumer
        "celery_workers": Notification.objects.filter(status="sent").count(),  # sent by Celery tasks
        "kafka_consumer": DepartureAvailability.objects.aggregate(s=Sum("seats_booked"))["s"] or 0,
    }


class ProgressSampler(threading.Thread):
    """Samples :func:`progress_counts` every ``interval`` seconds (monotonic clock)."""

    def __init__(self, interval: float = 0.25) -> None:
        super().__init__(daemon=True, name="progress-sampler")
        self.interval = interval
        self.samples: list[tuple[float, dict[str, int]]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        from django.db import connection

        while not self.stopping.is_set():
            try:
                self.samples.append((time.monotonic(), progress_counts()))
            except Exception:  # PostgreSQL hiccup: drop this sample, reconnect on the next
                connection.close()
            self.stopping.wait(self.interval)
        connection.close()

    def longest_stall(self, field: str, *, start: float, end: float) -> float | None:
        """Longest time in [start, end] during which ``field`` did not grow (None: no samples)."""
        points = [(t, c[field]) for t, c in self.samples if start <= t <= end]
        before = [c[field] for t, c in self.samples if t < start]
        if not points:
            return None
        last_value = before[-1] if before else points[0][1]
        last_change, longest = start, 0.0
        for t, value in points:
            if value > last_value:
                longest = max(longest, t - last_change)
                last_change, last_value = t, value
        longest = max(longest, points[-1][0] - last_change)
        return round(longest, 2)


def write_json(path: Path, data: Any) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str))
