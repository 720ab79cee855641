"""End-of-session cleanup: the test suite leaves no queue, exchange, topic or consumer group behind.

Each test session has names of its own (``tests/settings.py``): queues ``test.<run>.*`` (each
handler's queue, its DLQ and retry queues), ``celery.test.<run>``, the exchange
``tour_events.test.<run>`` (and ``.dlx``), the topic ``tour_events.test.<run>`` (and ``.dlq``),
consumer groups ``tourapp.test.<run>*``; the ops tests' workers add ``ops-test.*`` queues, and
per-test fixtures ``ctest.*``-style names they delete themselves (stale ones are swept). At the
end of the session (root ``conftest.py``) this module deletes this run's names, then the leftovers
of earlier runs that were killed before their own cleanup, and checks that none of this run's
names are left.

Several test sessions may share the broker (developers, CI jobs): a session registers itself in
``.cache/test-sessions/<run>`` (its PID) and another session's names are only deleted when that
session is dead: not registered with a live PID, and on RabbitMQ no consumer and no activity for
``STALE_AFTER_SECONDS``. Kafka-only leftovers (a topic with no RabbitMQ trace) are left alone while
a pytest process that did not register is running (a session started before this code existed).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
REGISTRY = ROOT / ".cache" / "test-sessions"
STALE_AFTER_SECONDS = 30 * 60

_RUN = r"(?P<run>[0-9a-f]{8})"
QUEUE_PATTERNS = (re.compile(rf"^test\.{_RUN}\."), re.compile(rf"^celery\.test\.{_RUN}(\.payments)?$"))
EXCHANGE_PATTERN = re.compile(rf"^tour_events\.test\.{_RUN}(\.dlx)?$")
TOPIC_PATTERN = re.compile(rf"^tour_events\.test\.{_RUN}(\.dlq)?$")
GROUP_PATTERN = re.compile(rf"^tourapp\.test\.{_RUN}(\..*)?$")
# The ops tests' workers consume "ops-test.<random>": unused once their worker stopped.
WORKER_QUEUE_PATTERN = re.compile(r"^ops-test\.[0-9a-f]{8}$")
# Per-test names (fixtures delete them; a killed run, or a handler a fixture did not know, leaves
# some): deleted once unused and idle for the staleness window.
PER_TEST_QUEUE_PATTERNS = (
    re.compile(r"^ctest\.[0-9a-f]{8}\."),
    re.compile(r"^celery\.ctest\.[0-9a-f]{8}(\.payments)?$"),
    re.compile(r"^relay-test-[0-9a-f]{8}$"),
    re.compile(r"^e2e-tap\.[0-9a-f]{8}$"),
)


def session_run() -> str:
    """This session's run id, as tests/settings.py chose it (from the queue prefix)."""
    match = re.match(rf"^test\.{_RUN}\.$", os.environ.get("EVENTS_QUEUE_PREFIX", ""))
    return match.group("run") if match else ""


def session_register(run: str) -> None:
    if run:
        REGISTRY.mkdir(parents=True, exist_ok=True)
        (REGISTRY / run).write_text(str(os.getpid()))


def session_unregister(run: str) -> None:
    if run:
        with contextlib.suppress(FileNotFoundError):
            (REGISTRY / run).unlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_registered_runs() -> dict[str, int]:
    runs: dict[str, int] = {}
    for path in REGISTRY.glob("*") if REGISTRY.is_dir() else []:
        try:
            pid = int(path.read_text().strip())
        except (OSError, ValueError):
            continue
        if _pid_alive(pid):
            runs[path.name] = pid
        else:
            with contextlib.suppress(OSError):
                path.unlink()
    return runs


def unregistered_pytest_running(registered_pids: Iterable[int]) -> bool:
    """True when a pytest process other than the registered ones runs on this machine."""
    known = set(registered_pids) | {os.getpid()}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(entry.name) not in known and any(arg.endswith(b"pytest") or arg == b"pytest" for arg in argv[:3]):
            return True
    return False


@dataclass
class Report:
    deleted: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        shown = ", ".join(self.deleted[:8]) + (", ..." if len(self.deleted) > 8 else "")
        lines = [f"broker cleanup: deleted {len(self.deleted)} test queues/exchanges/topics/groups"]
        if shown:
            lines[0] += f" ({shown})"
        lines += [f"broker cleanup: could not check: {problem}" for problem in self.problems]
        if self.left:
            lines.append(f"broker cleanup: LEFT BEHIND by this run: {', '.join(sorted(self.left))}")
        return lines


# ---------------------------------------------------------------- RabbitMQ (management HTTP API)
def management_credentials(broker_url: str) -> tuple[str, str]:
    """The management user ``scripts/services`` sets up (the app user has no management rights).

    As that script does: ``TOURAPP_RABBIT_ADMIN_USER`` / ``TOURAPP_RABBIT_ADMIN_PASSWORD`` from the
    environment, else the password it generated into ``.cache/rabbitmq/admin-password``; without
    either, the broker URL's own user (enough on a broker where that user may manage).
    """
    password = os.environ.get("TOURAPP_RABBIT_ADMIN_PASSWORD", "")
    password_file = Path(os.environ.get("TOURAPP_CACHE", ROOT / ".cache")) / "rabbitmq" / "admin-password"
    if not password and password_file.is_file():
        password = password_file.read_text().strip()
    if password:
        return os.environ.get("TOURAPP_RABBIT_ADMIN_USER", "tourapp-admin"), password
    parts = urllib.parse.urlsplit(broker_url)
    return urllib.parse.unquote(parts.username or "guest"), urllib.parse.unquote(parts.password or "guest")


class RabbitAdmin:
    """The few management API calls we need, on the broker URL's vhost."""

    def __init__(self, *, broker_url: str, management_url: str) -> None:
        parts = urllib.parse.urlsplit(broker_url)
        self.vhost = urllib.parse.quote(urllib.parse.unquote(parts.path.lstrip("/")) or "/", safe="")
        user, password = management_credentials(broker_url)
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self.base = management_url.rstrip("/")

    def _call(self, method: str, path: str) -> Any:
        request = urllib.request.Request(f"{self.base}/api/{path}", method=method)  # noqa: S310 - our own setting
        request.add_header("Authorization", self.auth)
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - see above
            body = response.read()
        return json.loads(body) if body else None

    def queues(self) -> list[dict[str, Any]]:
        return self._call("GET", f"queues/{self.vhost}?columns=name,consumers,messages,idle_since")

    def exchanges(self) -> list[str]:
        return [row["name"] for row in self._call("GET", f"exchanges/{self.vhost}?columns=name")]

    def delete(self, kind: str, name: str) -> None:
        with contextlib.suppress(urllib.error.HTTPError):  # already gone (404) is fine
            self._call("DELETE", f"{kind}/{self.vhost}/{urllib.parse.quote(name, safe='')}")


def _idle_seconds(queue: dict[str, Any], now: datetime) -> float:
    """Seconds since the queue's last activity; 0 when it is active (no ``idle_since``)."""
    idle_since = queue.get("idle_since")
    if not idle_since:
        return 0.0
    try:
        moment = datetime.strptime(idle_since, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return 0.0
    return (now - moment).total_seconds()


def _run_of(name: str, patterns: Iterable[re.Pattern[str]]) -> str:
    for pattern in patterns:
        match = pattern.match(name)
        if match:
            return match.group("run")
    return ""


def rabbitmq_cleanup(
    admin: RabbitAdmin, *, run: str, live_runs: set[str], report: Report, stale_after: float = STALE_AFTER_SECONDS
) -> tuple[set[str], set[str]]:
    """Delete this run's and dead runs' queues and exchanges.

    Returns the other runs seen active on RabbitMQ, and the dead runs whose names were deleted.
    """
    now = datetime.now(UTC)
    queues = admin.queues()
    active: set[str] = set()
    for queue in queues:
        other = _run_of(queue["name"], QUEUE_PATTERNS)
        if other and other != run and (queue.get("consumers") or _idle_seconds(queue, now) < stale_after):
            active.add(other)
    keep = live_runs | active
    dead: set[str] = set()
    for queue in queues:
        name = queue["name"]
        owner = _run_of(name, QUEUE_PATTERNS)
        unused = not queue.get("consumers")
        unused_worker_queue = unused and WORKER_QUEUE_PATTERN.match(name)
        stale_per_test_queue = (
            unused
            and _idle_seconds(queue, now) >= stale_after
            and any(pattern.match(name) for pattern in PER_TEST_QUEUE_PATTERNS)
        )
        if (owner and (owner == run or owner not in keep)) or unused_worker_queue or stale_per_test_queue:
            admin.delete("queues", name)
            report.deleted.append(f"queue {name}")
            dead.add(owner)
    for name in admin.exchanges():
        owner = _run_of(name, [EXCHANGE_PATTERN])
        if owner and (owner == run or owner not in keep):
            admin.delete("exchanges", name)
            report.deleted.append(f"exchange {name}")
            dead.add(owner)
    return active, dead - {run, ""}


def rabbitmq_left(admin: RabbitAdmin, *, run: str) -> list[str]:
    left = [f"queue {q['name']}" for q in admin.queues() if _run_of(q["name"], QUEUE_PATTERNS) == run]
    return left + [f"exchange {name}" for name in admin.exchanges() if _run_of(name, [EXCHANGE_PATTERN]) == run]


def rabbitmq_known_names_delete(*, report: Report) -> None:
    """Without the management API (no listing): delete this run's names we can compute, over AMQP."""
    from django.conf import settings

    from messaging.amqp import events_connection
    from messaging.consumers.rabbitmq_topology import queue_name_for, retry_queue_names
    from messaging.registry import handlers_all

    queues = [settings.CELERY_TASK_DEFAULT_QUEUE, settings.CELERY_TASK_PAYMENTS_QUEUE]
    for handler in handlers_all():
        queues += [
            queue_name_for(handler.name),
            f"{queue_name_for(handler.name)}.dlq",
            *retry_queue_names(handler.name),
        ]
    with events_connection() as connection:
        channel = connection.channel()
        for name in queues:
            with contextlib.suppress(Exception):
                channel.queue_delete(name)
                report.deleted.append(f"queue {name}")
        for name in (settings.EVENTS_EXCHANGE, f"{settings.EVENTS_EXCHANGE}.dlx"):
            with contextlib.suppress(Exception):
                channel.exchange_delete(name)
                report.deleted.append(f"exchange {name}")


# ---------------------------------------------------------------- Kafka
def kafka_cleanup(
    *,
    bootstrap_servers: list[str],
    run: str,
    keep: set[str],
    kafka_only_ok: bool,
    rabbit_runs: set[str],
    report: Report,
) -> list[str]:
    """Delete this run's and dead runs' topics and groups; returns what of this run is left after."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10000)
    try:

        def doomed(owner: str) -> bool:
            if not owner:
                return False
            if owner == run:
                return True
            return owner not in keep and (owner in rabbit_runs or kafka_only_ok)

        groups = [group for group, _ in admin.list_consumer_groups()]
        group_doomed = [g for g in groups if doomed(_run_of(g, [GROUP_PATTERN]))]
        if group_doomed:
            described = {d.group: d.state for d in admin.describe_consumer_groups(group_doomed)}
            # Another run's group with members is in use after all; this run's own is tried anyway.
            group_doomed = [
                g
                for g in group_doomed
                if described.get(g) in ("Empty", "Dead", None) or _run_of(g, [GROUP_PATTERN]) == run
            ]
            if group_doomed:
                with contextlib.suppress(Exception):  # a group that just went away
                    admin.delete_consumer_groups(group_doomed)
                report.deleted += [f"group {g}" for g in group_doomed]
        topics = [t for t in admin.list_topics() if doomed(_run_of(t, [TOPIC_PATTERN]))]
        if topics:
            with contextlib.suppress(Exception):  # UnknownTopicOrPartition: deleted meanwhile
                admin.delete_topics(topics, timeout_ms=10000)
            report.deleted += [f"topic {t}" for t in topics]
        left = [f"topic {t}" for t in admin.list_topics() if _run_of(t, [TOPIC_PATTERN]) == run]
        left += [f"group {g}" for g, _ in admin.list_consumer_groups() if _run_of(g, [GROUP_PATTERN]) == run]
        return left
    finally:
        admin.close()


# ---------------------------------------------------------------- entry point
def session_cleanup(*, run: str) -> Report:
    """Delete this run's broker names and dead runs' leftovers; report what of this run is left."""
    from django.conf import settings

    report = Report()
    if not run:
        report.problems.append("no per-session queue prefix (EVENTS_QUEUE_PREFIX is not test.<run>.)")
        return report
    live = live_registered_runs()
    live_runs = set(live) - {run}
    rabbit_runs: set[str] = set()
    try:
        admin = RabbitAdmin(broker_url=settings.EVENTS_AMQP_URL, management_url=settings.RABBITMQ_MANAGEMENT_URL)
        active, rabbit_runs = rabbitmq_cleanup(admin, run=run, live_runs=live_runs, report=report)
        report.left += rabbitmq_left(admin, run=run)
        live_runs |= active
    except (OSError, ValueError) as exc:
        report.problems.append(
            f"RabbitMQ management API at {settings.RABBITMQ_MANAGEMENT_URL}: {exc}; "
            "deleted this run's known names over AMQP, earlier runs not checked"
        )
        with contextlib.suppress(Exception):
            rabbitmq_known_names_delete(report=report)
    try:
        report.left += kafka_cleanup(
            bootstrap_servers=list(settings.KAFKA_BOOTSTRAP_SERVERS),
            run=run,
            keep=live_runs,
            kafka_only_ok=not unregistered_pytest_running(live.values()),
            rabbit_runs=rabbit_runs,
            report=report,
        )
    except Exception as exc:  # Kafka down (a fault test's aftermath): say so, do not hide the test results
        report.problems.append(f"Kafka: {type(exc).__name__}: {exc}")
    return report
