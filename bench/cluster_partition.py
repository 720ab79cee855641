"""A network partition between one RabbitMQ node and the two others, made with the nodes' own controls.

The minority node is given a wrong Erlang cookie for its two peers (``erlang:set_cookie/2``) and
disconnected from them (``erlang:disconnect_node/1``): every reconnection attempt, in either
direction, fails the distribution handshake until the right cookie is restored. That is a lasting
two-way partition of the Erlang distribution while every AMQP port stays open, which is what
``cluster_partition_handling = pause_minority`` is for: the isolated node sees one node of three
and pauses (closes its client connections, stops serving); the majority carries on.

:class:`ConfirmedPublisher` threads publish numbered messages with publisher confirms into one
quorum queue, one thread homed on each node (failing over to the others). A message counts as
*acknowledged* only when its confirm arrived. After healing, the queue is read to the end:
``lost`` = acknowledged messages that are not there (must be 0); messages whose publish raised
but that are there anyway are ``unconfirmed_but_stored`` (allowed: the client cannot know).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from typing import Any

from tests.e2e.harness import ROOT

BOGUS_COOKIE = "tourapp_partition_test"


def _hostname() -> str:
    return socket.gethostname().split(".")[0]


def node_name(n: int) -> str:
    return f"rabbit{n}@{_hostname()}"


def rabbit_eval(n: int, expression: str, timeout: float = 30) -> str:
    """``rabbitmqctl -n rabbitN@host eval EXPRESSION`` with that node's env file (loopback only)."""
    env_file = ROOT / ".cache" / "cluster" / f"rabbit{n}" / "rabbitmq-env.conf"
    done = subprocess.run(
        ["rabbitmqctl", "-q", "-n", node_name(n), "eval", expression],
        env={
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "RABBITMQ_CONF_ENV_FILE": str(env_file),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        },
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"eval on {node_name(n)} failed: {done.stderr.strip()[-500:]}")
    return done.stdout.strip()


def partition_start(minority: int, others: list[int]) -> None:
    steps = ", ".join(
        f"erlang:set_cookie('{node_name(o)}', '{BOGUS_COOKIE}'), erlang:disconnect_node('{node_name(o)}')"
        for o in others
    )
    rabbit_eval(minority, f"{steps}, ok.")


def partition_heal(minority: int, others: list[int]) -> None:
    steps = ", ".join(
        f"erlang:set_cookie('{node_name(o)}', erlang:get_cookie()), net_adm:ping('{node_name(o)}')" for o in others
    )
    rabbit_eval(minority, f"{steps}, ok.")


def partition_heal_everywhere() -> None:
    """Restore every node's cookie for every peer (safe to call when nothing is partitioned)."""
    for n in (1, 2, 3):
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            partition_heal(n, [o for o in (1, 2, 3) if o != n])


def rabbit_running(n: int) -> bool:
    """True while node N's RabbitMQ application runs (False: paused, or unreachable)."""
    try:
        return rabbit_eval(n, "rabbit:is_running().", timeout=10) == "true"
    except (RuntimeError, subprocess.TimeoutExpired):
        return False


class ConfirmedPublisher(threading.Thread):
    """Publishes ``<name>-<seq>`` with confirms until stopped; remembers what was confirmed."""

    def __init__(self, name: str, urls: list[str], queue: str) -> None:
        super().__init__(daemon=True, name=f"publisher-{name}")
        self.label = name
        self.urls = urls  # home node first
        self.queue = queue
        self.acked: set[str] = set()
        self.unconfirmed: set[str] = set()
        self.errors = 0
        self.stopping = threading.Event()
        self.failovers: list[float] = []  # seconds from an error to the next confirmed publish

    def run(self) -> None:
        from kombu import Producer

        from messaging.amqp import FailoverConnection

        seq = 0
        conn: Any = None
        error_at: float | None = None
        while not self.stopping.is_set():
            try:
                if conn is None:
                    conn = FailoverConnection(
                        ";".join(self.urls), transport_options={"confirm_publish": True}, connect_timeout=2
                    )
                    conn.ensure_connection(max_retries=0)
                    producer = Producer(conn.channel())
                seq += 1
                message_id = f"{self.label}-{seq}"
                producer.publish(
                    {"n": seq},
                    exchange="",
                    routing_key=self.queue,
                    delivery_mode=2,
                    message_id=message_id,
                    timeout=10,
                )
                self.acked.add(message_id)
                if error_at is not None:
                    self.failovers.append(round(time.monotonic() - error_at, 2))
                    error_at = None
            except Exception:
                if seq:
                    self.unconfirmed.add(f"{self.label}-{seq}")
                self.errors += 1
                error_at = error_at or time.monotonic()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        conn.release()
                conn = None
                time.sleep(0.2)
            else:
                time.sleep(0.01)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.release()


def queue_read_all(urls: list[str], queue: str) -> list[str]:
    """Every message id in ``queue``, consumed (acked) to the end."""
    from kombu import Connection, Queue

    ids: list[str] = []
    with Connection(";".join(urls)) as conn:
        bound = Queue(queue, no_declare=True)(conn.channel())
        while (message := bound.get(no_ack=False)) is not None:
            ids.append(str(message.properties.get("message_id")))
            message.ack()
    return ids
