"""Run the whole tourapp system as real processes, and measure what it did.

Importable without pytest (``bench/soak.py`` reuses it). ``System`` starts web (gunicorn), a
Celery worker, Celery beat and ``manage.py run_kafka_consumer`` as subprocesses of this process,
each in its own process group, with the caller's environment plus ``DATABASE_URL``; logs go to
one file per process. Every start waits for readiness with a deadline; ``stop_all`` reaps every
process group it started (SIGTERM, then SIGKILL), by PID only. Email and SMS go through the
recording backends of ``tests/support/sends.py``: ``System.sends_path`` lists what went out.

The guarantee measured here (``collect_figures``): every booking has its event, every event is
delivered to each destination, has its side effects exactly once, and no departure is
overbooked. Broker-level redeliveries are allowed (at-least-once) and reported separately.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.support.kafka import kafka_topics_create
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
PROCESS_NAMES = ("payments_gateway", "web", "worker", "beat", "kafka_consumer")

# Faster safety nets than production so a fault scenario drains in seconds, not minutes.
FAST_RECOVERY_ENV = {
    "OUTBOX_SWEEP_SECONDS": "1",
    "OUTBOX_BACKOFF_BASE_SECONDS": "0.2",
    "OUTBOX_BACKOFF_MAX_SECONDS": "2",
    "OUTBOX_MAX_ATTEMPTS": "1000",
    "OUTBOX_CLAIM_LEASE_SECONDS": "20",
    "OUTBOX_UNAVAILABLE_BACKOFF_MAX_SECONDS": "5",
    "NOTIFICATION_SWEEP_AFTER_SECONDS": "30",
    # Payments: a short client timeout (the dummy's tok_timeout hangs 3 s), short backoffs, a fast sweep.
    "PAYMENTS_GATEWAY_TIMEOUT_SECONDS": "1",
    "PAYMENTS_RETRY_BACKOFF_MAX_SECONDS": "2",
    "PAYMENTS_MAX_RETRIES": "1000",
    "PAYMENTS_SWEEP_AFTER_SECONDS": "10",
    # Bursts come from a handful of test users; throttling and the seat cap are tested in tests/security.
    "BOOKING_THROTTLE_RATE": "100000/min",
    "BOOKING_MAX_SEATS_PER_USER_PER_DEPARTURE": "100000",
    "LOG_FORMAT": "json",
    "PYTHONUNBUFFERED": "1",
}


# Not safety nets but the load's shape: benchmarks book from a few hundred users, so the per-user
# throttle and seat cap (business rules, not costs) stay lifted; logs stay JSON for the parsers.
_KEPT_FOR_BENCHMARKS = frozenset(
    {"BOOKING_THROTTLE_RATE", "BOOKING_MAX_SEATS_PER_USER_PER_DEPARTURE", "LOG_FORMAT", "PYTHONUNBUFFERED"}
)


def production_env() -> dict[str, str]:
    """What a benchmark runs the system with: every safety net ``FAST_RECOVERY_ENV`` speeds up back
    at its production value (the settings' default as this process reads it; the fast payment
    sweep alone re-sends every charge still queued after 10 s), and ``DEBUG`` off. Needs Django set up."""
    from django.conf import settings

    env = {name: str(getattr(settings, name)) for name in FAST_RECOVERY_ENV if name not in _KEPT_FOR_BENCHMARKS}
    return {**env, "DEBUG": "false"}


class ProcessDied(RuntimeError):
    """A probe found its process dead: waiting longer cannot help."""


def session_name(variable: str, default: str) -> str:
    """A per-session name as the started processes see it (the environment, not this process's settings).

    The root conftest sets these in ``os.environ``; pytest-django may have loaded settings before
    that, so this process's ``settings`` can still hold the defaults. Children read the environment.
    """
    return os.environ.get(variable, default)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def services(command: str, name: str = "") -> None:
    """``scripts/services <command> [name]`` (stop/start one service, or ``up`` to restore all)."""
    argv = ["bash", str(ROOT / "scripts" / "services"), command] + ([name] if name else [])
    subprocess.run(argv, check=True, timeout=240, cwd=ROOT, capture_output=True)


# ----------------------------------------------------------------------------- HTTP
@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float
    sent_at: float

    def json(self) -> Any:
        return json.loads(self.body or b"null")


def http_request(
    base_url: str,
    method: str,
    path: str,
    *,
    body: Any = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> Response:
    """One HTTP request on a fresh connection (gunicorn sync workers close after each response)."""
    parts = urlsplit(base_url)
    all_headers = {"Accept": "application/json", **(headers or {})}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    if token:
        all_headers["Authorization"] = f"Token {token}"
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    sent_at = time.time()
    start = time.monotonic()
    try:
        conn.request(method, path, body=payload, headers=all_headers)
        raw = conn.getresponse()
        data = raw.read()
        return Response(
            raw.status, {k.lower(): v for k, v in raw.getheaders()}, data, time.monotonic() - start, sent_at
        )
    finally:
        conn.close()


# ----------------------------------------------------------------------------- processes
class ManagedProcess:
    """One subprocess in its own process group, logging to a file that survives restarts."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None
        self.log_offset = 0  # where the current incarnation's log starts
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start #{self.starts + 1} of {self.name}: {' '.join(self.argv)}\n".encode())
            self.log_offset = log.tell()
            self.popen = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.starts += 1

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal_group(self, sig: int) -> None:
        """Signal this process's own group (its pool children included), never anyone else's."""
        if self.popen is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL the process and its children at once: a crash, not a shutdown."""
        self.signal_group(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(timeout=30)

    def stop(self, grace: float = 15) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=grace)
        # Children may outlive a parent that exited on SIGTERM: the group gets SIGKILL either way.
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)

    def log_text(self, *, current_only: bool = False) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as log:
            if current_only:
                log.seek(self.log_offset)
            return log.read().decode(errors="replace")


@dataclass
class System:
    """web + worker + beat + kafka consumer, started against ``database_url``."""

    database_url: str
    log_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    web_workers: int = 3
    worker_concurrency: int = 2
    processes: dict[str, ManagedProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.node = f"e2e-{uuid.uuid4().hex[:6]}"
        self.exchange = session_name("EVENTS_EXCHANGE", "tour_events")
        self.topic = session_name("KAFKA_TOPIC", "tour_events")
        self.dlq_topic = session_name("KAFKA_DLQ_TOPIC", f"{self.topic}.dlq")
        self.queue_prefix = session_name("EVENTS_QUEUE_PREFIX", "")
        self.redis_prefix = session_name("REDIS_KEY_PREFIX", "tourapp")
        self.gateway_port = free_port()
        self.gateway_url = f"http://127.0.0.1:{self.gateway_port}"
        gateway_env = {"PAYMENTS_GATEWAY_URL": self.gateway_url, "PAYMENTS_DUMMY_DB": str(self.log_dir / "gateway.db")}
        from tests.support.sends import RECORD_ENV

        # Email and SMS go through the recording backends: what went out is counted from their file.
        self.sends_path = self.log_dir / "sends.jsonl"
        sends_env = {
            "EMAIL_BACKEND": "tests.support.sends.RecordingEmailBackend",
            "SMS_BACKEND": "tests.support.sends.RecordingSmsBackend",
            RECORD_ENV: str(self.sends_path),
        }
        base_env = {**os.environ, **FAST_RECOVERY_ENV, **gateway_env, **sends_env, **self.extra_env}
        base_env["DATABASE_URL"] = self.database_url
        base_env.pop("DJANGO_SETTINGS_MODULE", None)
        base_env["DJANGO_SETTINGS_MODULE"] = "tourapp.settings"
        argv = {
            "web": [
                str(BIN / "gunicorn"), "tourapp.wsgi", "--bind", f"127.0.0.1:{self.port}",
                "--workers", str(self.web_workers), "--timeout", "60", "--graceful-timeout", "5",
                "--access-logfile", "-",
            ],
            "worker": [
                str(BIN / "celery"), "-A", "tourapp", "worker", "--loglevel", "INFO",
                "--concurrency", str(self.worker_concurrency), "-n", f"{self.node}@%h",
                "--without-gossip", "--without-mingle", "--without-heartbeat",
            ],
            "beat": [
                str(BIN / "celery"), "-A", "tourapp", "beat", "--loglevel", "INFO",
                "--schedule", str(self.log_dir / "celerybeat-schedule"),
            ],
            "kafka_consumer": [str(BIN / "python"), "manage.py", "run_kafka_consumer"],
            "payments_gateway": [
                str(BIN / "python"), "manage.py", "payments_gateway_dummy", "--port", str(self.gateway_port),
                "--hang-seconds", "3", "--slow-seconds", "3",
            ],
        }  # fmt: skip
        role = {"web": "web", "worker": "worker", "beat": "beat", "kafka_consumer": "kafka-consumer"}
        role["payments_gateway"] = "payments-gateway"
        for name, args in argv.items():
            env = {**base_env, "TOURAPP_ROLE": role[name]}
            if name == "kafka_consumer":
                # Its handler (availability) logs nothing at INFO; the line per applied event that
                # carries the correlation id is DEBUG (messaging.inbox).
                env["LOG_LEVEL"] = "DEBUG"
            self.processes[name] = ManagedProcess(name, args, env, self.log_dir / f"{name}.log")

    # -- lifecycle
    def start(self, *names: str, timeout: float = 90) -> None:
        names = names or PROCESS_NAMES
        members_before: set[str] = set()
        if "kafka_consumer" in names:
            with contextlib.suppress(Exception):  # no group yet: every member will be new
                members_before = self._kafka_members()
        for name in names:
            self.processes[name].start()
        for name in names:
            self.wait_ready(name, timeout=timeout, members_before=members_before)

    def wait_ready(self, name: str, *, timeout: float, members_before: set[str] | None = None) -> None:
        proc = self.processes[name]

        def ready() -> bool:
            if not proc.alive():
                raise ProcessDied(f"{name} exited with {proc.popen.returncode if proc.popen else '?'}")
            try:
                return probe()
            except Exception:  # a probe fails while its service is still starting
                return False

        def probe() -> bool:
            if name == "web":
                return http_request(self.base_url, "GET", "/admin/login/", timeout=5).status < 500
            if name == "worker":
                return " ready." in proc.log_text(current_only=True)
            if name == "beat":
                return "beat: Starting" in proc.log_text(current_only=True)
            if name == "payments_gateway":
                return http_request(self.gateway_url, "GET", "/health", timeout=5).status == 200
            return bool(self._kafka_members() - (members_before or set()))

        try:
            wait_until(ready, timeout=timeout, what=f"{name} to be ready", interval=0.3)
        except (AssertionError, ProcessDied) as exc:
            raise RuntimeError(f"{exc}\n--- {name} log tail ---\n{self.tail(name)}") from exc

    def _kafka_members(self) -> set[str]:
        """Member ids of the session's consumer group, once the group is Stable."""
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"))
        try:
            (group,) = admin.describe_consumer_groups([session_name("KAFKA_CONSUMER_GROUP", "tourapp")])
        finally:
            admin.close()
        if group.state != "Stable":
            return set()
        return {member.member_id for member in group.members}

    def kill(self, name: str) -> None:
        self.processes[name].kill()

    def restart(self, name: str, *, timeout: float = 90) -> None:
        self.processes[name].stop()
        self.start(name, timeout=timeout)

    def stop_all(self) -> None:
        for proc in self.processes.values():
            proc.stop()

    def __enter__(self) -> System:
        try:
            kafka_topics_create(self.topic, dlq_topic=self.dlq_topic)
            self.start()
        except BaseException:
            self.stop_all()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    # -- logs
    def tail(self, name: str, lines: int = 60) -> str:
        return "\n".join(self.processes[name].log_text().splitlines()[-lines:])

    def dump_logs(self, lines: int = 60) -> str:
        return "\n".join(f"===== {name} ({p.log_path})\n{self.tail(name, lines)}" for name, p in self.processes.items())

    def log_lines(self, name: str) -> list[dict[str, Any]]:
        """The JSON log records of every incarnation of ``name`` (non-JSON lines skipped)."""
        records = []
        for line in self.processes[name].log_text().splitlines():
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    records.append(json.loads(line))
        return records

    # -- HTTP
    def request(self, method: str, path: str, **kwargs: Any) -> Response:
        return http_request(self.base_url, method, path, **kwargs)


# ----------------------------------------------------------------------------- load
@dataclass
class Burst:
    """The outcome of firing bookings: every response, in completion order."""

    responses: list[tuple[Response, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, response: Response, request: dict[str, Any]) -> None:
        with self.lock:
            self.responses.append((response, request))

    @property
    def created_ids(self) -> list[int]:
        return [r.json()["id"] for r, _ in self.responses if r.status == 201]

    def status_counts(self) -> dict[int, int]:
        return dict(Counter(r.status for r, _ in self.responses))


def fire_bookings(
    base_url: str,
    *,
    tokens: list[str],
    departure_ids: list[int],
    count: int,
    clients: int,
    on_progress: Callable[[int], None] | None = None,
    tier_cycle: Iterable[str] = ("standard", "premium"),
    max_seconds: float = 600,
    payment_tokens: list[str] | None = None,
) -> Burst:
    """POST ``count`` one-seat bookings from ``clients`` threads, spreading users and departures.

    ``payment_tokens[k]``, when given, is the ``payment_token`` of every booking made with ``tokens[k]``.

    Connection errors (the web process being killed, say) are recorded as status 0.
    ``on_progress(n)`` is called from the firing threads after each response.
    """
    tiers = list(tier_cycle)
    burst = Burst()
    deadline = time.monotonic() + max_seconds
    counter = iter(range(count))
    counter_lock = threading.Lock()

    def client_loop() -> None:
        while time.monotonic() < deadline:
            with counter_lock:
                i = next(counter, None)
            if i is None:
                return
            request = {"departure_id": departure_ids[i % len(departure_ids)], "seats": 1, "tier": tiers[i % len(tiers)]}
            if payment_tokens and payment_tokens[i % len(tokens)]:
                request["payment_token"] = payment_tokens[i % len(tokens)]
            try:
                response = http_request(base_url, "POST", "/api/bookings/", body=request, token=tokens[i % len(tokens)])
            except OSError as exc:
                response = Response(0, {}, repr(exc).encode(), 0.0, time.time())
            burst.add(response, request)
            if on_progress:
                on_progress(len(burst.responses))

    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in [pool.submit(client_loop) for _ in range(clients)]:
            future.result()
    return burst


def seed_bookable(*, prefix: str, users: int, departures: int, capacity: int) -> tuple[list[str], list[int]]:
    """Create a 'Paris City Tour' with future departures and users with API tokens (benchmarks, soak).

    Needs Django set up against the target database; returns (tokens, departure ids).
    """
    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from availability.models import Departure, Tour

    tour = Tour.objects.create(name="Paris City Tour", slug=prefix, base_price="199.99", currency="USD")
    departure_ids = [
        Departure.objects.create(tour=tour, starts_at=timezone.now() + timedelta(days=30 + i), capacity=capacity).id
        for i in range(departures)
    ]
    tokens = []
    for i in range(users):
        # token users only: no password (hashing one costs half a second of PBKDF2 per user)
        user = get_user_model().objects.create_user(f"{prefix}-{i}", f"{prefix}-{i}@example.com", password=None)
        tokens.append(Token.objects.create(user=user).key)
    return tokens, departure_ids
