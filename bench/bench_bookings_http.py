"""Benchmark: booking creation over HTTP (gunicorn), with and without the outbox write, in one run.

Run: ``.venv/bin/python bench/bench_bookings_http.py`` (services up; about 90 s; loopback only).

What it does
- creates a throw-away database ``tourapp_bench_<pid>`` (migrated, dropped at the end), one user
  with a token per client and 64 departures with ample capacity (bookings spread over departures,
  as in real traffic: one departure's row lock serialises its own bookings by design), 50,000
  earlier bookings by 2,000 other customers, then ``ANALYZE`` (statistics of a database with a past);
- starts two gunicorn servers on loopback, both running the real ``POST /api/bookings/`` code
  with production's worker model (3 sync workers, as ``tourapp/gunicorn.conf.py``):
  **with_outbox** (``tourapp.wsgi``) and **without_outbox** (the factory ``bench_app`` below
  replaces, in that process, the booking's outbox event by nothing and its statement
  ``bookings.queries.booking_insert_with_event`` by the insert of the booking row alone);
- fires bookings from ``BENCH_THREADS`` (8) concurrent clients, alternating the servers in short
  rounds so machine noise hits them alike. The load generator is ``wrk`` (C, one event-loop
  thread, script ``bench/wrk/bookings.lua``) when installed (``scripts/services bench-tools``,
  run by ``make bench``): it takes about 1 % of the machine. ``BENCH_CLIENT=python`` (the
  fallback) uses one Python thread with ``http.client`` per client instead: 2-5 % of the machine,
  taken from the servers;
- prints JSON: throughput, p50/p99 latency per variant, the outbox overhead (overall and per
  pair of adjacent rounds; which variant goes first alternates), the client's CPU.

The "without" variant is BENCHMARK-ONLY: it exists in this file and nowhere in the application.
The relay kick (a ``NOTIFY`` in the outbox's own statement) is part of the "with" cost; no Celery
worker is started. Targets (issue 3): >= 400 bookings/s, p99 <= 50 ms, overhead <= 10 %.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
THREADS = int(os.environ.get("BENCH_THREADS", "8"))  # concurrent clients: "moderate" for 2 cores
WRK_SCRIPT = ROOT / "bench/wrk/bookings.lua"
CLIENT = os.environ.get("BENCH_CLIENT") or ("wrk" if shutil.which("wrk") else "python")
ROUND_SECONDS = float(os.environ.get("BENCH_ROUND_SECONDS", "6"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
WARMUP_SECONDS = 2.0
GUNICORN_WORKERS = int(os.environ.get("BENCH_GUNICORN_WORKERS", "3"))
# As in production (tourapp/gunicorn.conf.py): sync workers, WEB_CONCURRENCY (3) of them.
GUNICORN_CLASS = os.environ.get("BENCH_GUNICORN_CLASS", "sync")
GUNICORN_THREADS = int(os.environ.get("BENCH_GUNICORN_THREADS", "1" if GUNICORN_CLASS == "sync" else "4"))
DEPARTURES = 64
HISTORY_CUSTOMERS = 2_000
HISTORY_BOOKINGS = 50_000


def bench_app(variant: str) -> Any:
    """gunicorn app factory for the BENCHMARK-ONLY variants (never used by the application).

    ``without_outbox``: the booking's event is not built, and ``bookings.queries.booking_insert_with_event``
    is replaced by the insert of the booking row alone: no outbox rows, no relay kick.
    """
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tourapp.settings")
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    if variant == "without_outbox":
        from types import SimpleNamespace

        import bookings.services
        from bookings.models import Booking
        from bookings.queries import BOOKING_PARAM_PREFIX
        from tourapp.db import mark_in_database, model_insert_sql, prepared_cursor

        # The service logs the recorded event's type and id: hand it a stand-in with them.
        no_event = SimpleNamespace(event_type="-", event_id="-")

        def without_event(**kwargs: Any) -> Any:
            return no_event

        def booking_insert_alone(*, booking: Any, values: dict[str, Any], event: Any) -> None:
            with prepared_cursor() as cursor:
                cursor.execute(model_insert_sql(Booking, param_prefix=BOOKING_PARAM_PREFIX), values, prepare=True)
            mark_in_database(booking)

        bookings.services._booking_event = without_event  # type: ignore[assignment]  # bench only
        bookings.services.booking_insert_with_event = booking_insert_alone  # type: ignore[assignment]  # bench only
    else:
        raise ValueError(f"unknown bench variant {variant!r}")
    return application


# ------------------------------------------------------------------ set-up and tear-down


def _bench_env(database: str) -> dict[str, str]:
    from urllib.parse import urlsplit, urlunsplit

    base = os.environ.get("DATABASE_URL", "postgres://tourapp:tourapp@127.0.0.1:5432/tourapp")
    parts = urlsplit(base)
    run = uuid.uuid4().hex[:8]
    return {
        **os.environ,
        "DATABASE_URL": urlunsplit(parts._replace(path=f"/{database}")),
        "DJANGO_SETTINGS_MODULE": "tourapp.settings",
        "BOOKING_THROTTLE_RATE": "100000000/min",  # the throttle still runs (one Redis round trip)
        "BOOKING_MAX_SEATS_PER_USER_PER_DEPARTURE": "1000000000",
        "CELERY_TASK_DEFAULT_QUEUE": f"celery.bench.{run}",
        "REDIS_KEY_PREFIX": f"tourapp.bench.{run}",
        "LOG_LEVEL": "WARNING",
        "DEBUG": "false",
        # As under `make run`: every worker writes its metrics to files there (a temp dir, removed).
        "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="bench_bookings_prom_"),
    }


def _admin_sql(env: dict[str, str], statement: str) -> None:
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    url = urlunsplit(urlsplit(env["DATABASE_URL"])._replace(path="/postgres")).replace("postgres://", "postgresql://")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


def _seed(env: dict[str, str]) -> tuple[list[str], list[int]]:
    """Migrate the bench database, then create users with tokens and departures with ample seats."""
    subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    os.environ.update({k: env[k] for k in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE", "REDIS_KEY_PREFIX")})
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)  # this process only seeds; it exports no metrics
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from tests.e2e.harness import seed_bookable

    tokens, departure_ids = seed_bookable(prefix="bench", users=THREADS, departures=DEPARTURES, capacity=10_000_000)
    _seed_history(departure_ids)
    from django.db import connections

    connections.close_all()
    return tokens, departure_ids


def _seed_history(departure_ids: list[int]) -> None:
    """``HISTORY_BOOKINGS`` earlier bookings by ``HISTORY_CUSTOMERS`` other customers on the same
    departures, then ``ANALYZE``: the servers plan their statements against the statistics of a
    database with a past, as in production, and against an outbox analysed as empty, as after a
    purge. That state is what exposed the cached foreign-key plan described at
    ``messaging.models.OutboxDelivery.event`` (one server slowing down with every booking)."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from availability.models import Departure
    from bookings.models import Booking

    users, bookings, departures = (
        get_user_model()._meta.db_table,
        Booking._meta.db_table,
        Departure._meta.db_table,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {users} (password, is_superuser, username, first_name, last_name, email,
                                     is_staff, is_active, date_joined)
                SELECT '!', false, 'history-' || n, '', '', 'history-' || n || '@example.com', false, true, now()
                FROM generate_series(1, %s) AS n""",  # noqa: S608 - table names from model meta
            [HISTORY_CUSTOMERS],
        )
        cursor.execute(
            f"""INSERT INTO {bookings} (seats, tier, total_price, currency, contact_email, contact_phone,
                                        status, created_at, updated_at, departure_id, user_id)
                SELECT 1, 'standard', 199.99, 'USD', u.email, '', 'confirmed', now(), now(),
                       (%s::bigint[])[1 + n %% %s], u.id
                FROM generate_series(1, %s) AS n
                JOIN {users} u ON u.username = 'history-' || (1 + n %% %s)""",  # noqa: S608 - as above
            [departure_ids, len(departure_ids), HISTORY_BOOKINGS, HISTORY_CUSTOMERS],
        )
        cursor.execute(
            f"""UPDATE {departures} d SET seats_reserved = b.seats
                FROM (SELECT departure_id, sum(seats) AS seats FROM {bookings} GROUP BY departure_id) b
                WHERE b.departure_id = d.id""",  # noqa: S608 - as above
        )
        cursor.execute("ANALYZE")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_gunicorn(app: str, port: int, env: dict[str, str], log: Any) -> subprocess.Popen:
    return subprocess.Popen(
        [
            str(ROOT / ".venv/bin/gunicorn"),
            app,
            "--chdir",
            str(ROOT),
            "--pythonpath",
            str(ROOT / "bench"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(GUNICORN_WORKERS),
            "--worker-class",
            GUNICORN_CLASS,
            "--threads",
            str(GUNICORN_THREADS),
            "--keep-alive",
            "30",
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )


def _wait_ready(port: int, process: subprocess.Popen, deadline_seconds: float = 30) -> None:
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn on port {port} exited with {process.returncode}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/tours/")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            time.sleep(0.1)  # polling for readiness, bounded by the deadline
    raise RuntimeError(f"gunicorn on port {port} not ready within {deadline_seconds}s")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def _delete_bench_queue(env: dict[str, str]) -> None:
    from kombu import Connection

    try:
        with Connection(os.environ.get("CELERY_BROKER_URL", "amqp://tourapp:tourapp@127.0.0.1:5672/tourapp")) as conn:
            conn.default_channel.queue_delete(env["CELERY_TASK_DEFAULT_QUEUE"])
    except Exception as exc:
        print(f"note: could not delete the bench Celery queue: {exc}", file=sys.stderr)


# ------------------------------------------------------------------ load


def _load(port: int, tokens: list[str], departure_ids: list[int], seconds: float) -> dict[str, Any]:
    """Book for ``seconds`` over one connection per token with the configured client."""
    cpu_before = os.times()
    run = (_load_wrk if CLIENT == "wrk" else _load_python)(port, tokens, departure_ids, seconds)
    cpu_after = os.times()
    # This process (python client) and its waited-for children (wrk); the servers are not waited for.
    run["client_cpu_s"] = sum(cpu_after[:4]) - sum(cpu_before[:4])
    return run


def _load_wrk(port: int, tokens: list[str], departure_ids: list[int], seconds: float) -> dict[str, Any]:
    """One ``wrk`` run; its Lua script prints one JSON line of counts and latency percentiles."""
    url = f"http://127.0.0.1:{port}/"
    completed = subprocess.run(
        ["wrk", "-t1", f"-c{len(tokens)}", f"-d{round(seconds)}s", "--timeout", "30s", "-s", str(WRK_SCRIPT), url],
        env={**os.environ, "BENCH_TOKENS": ",".join(tokens), "BENCH_DEPARTURES": ",".join(map(str, departure_ids))},
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    statuses = {201: result["requests"] - result["non_2xx"]}
    if result["non_2xx"]:
        statuses[-1] = result["non_2xx"]  # wrk counts them without telling the status
    if result["socket_errors"]:
        statuses[0] = result["socket_errors"]
    return {
        "statuses": statuses,
        "elapsed": result["duration_us"] / 1e6,
        "p50": result["p50_us"] / 1e6,
        "p99": result["p99_us"] / 1e6,
    }


def _load_python(port: int, tokens: list[str], departure_ids: list[int], seconds: float) -> dict[str, Any]:
    """Book for ``seconds`` from one thread per token; return latencies (s) and status counts."""
    stop_at = time.monotonic() + seconds
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def client(token: str) -> None:
        rng = random.Random(token)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
        mine: list[float] = []
        counts: dict[int, int] = {}
        while time.monotonic() < stop_at:
            body = json.dumps({"departure_id": rng.choice(departure_ids), "seats": 1, "tier": rng.choice(TIERS)})
            started = time.perf_counter()
            try:
                conn.request("POST", "/api/bookings/", body=body, headers=headers)
                response = conn.getresponse()
                response.read()
            except (http.client.HTTPException, OSError):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                counts[0] = counts.get(0, 0) + 1
                continue
            mine.append(time.perf_counter() - started)
            counts[response.status] = counts.get(response.status, 0) + 1
        conn.close()
        with lock:
            latencies.extend(mine)
            for status, count in counts.items():
                statuses[status] = statuses.get(status, 0) + count

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"latencies": latencies, "statuses": statuses, "elapsed": time.monotonic() - started}


TIERS = ("standard", "premium")


def _rate(run: dict[str, Any]) -> float:
    return run["statuses"].get(201, 0) / run["elapsed"]


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Throughput over all rounds; latency percentiles over all requests (python client) or, from
    wrk's per-round percentiles, the median round's p50 and the worst round's p99."""
    elapsed = sum(run["elapsed"] for run in runs)
    statuses: dict[str, int] = {}
    for run in runs:
        for status, count in run["statuses"].items():
            statuses[str(status)] = statuses.get(str(status), 0) + count
    created = statuses.get("201", 0)
    client_cpu = sum(run["client_cpu_s"] for run in runs)
    if "latencies" in runs[0]:
        latencies = sorted(x for run in runs for x in run["latencies"])
        quantiles = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
        p50, p99 = quantiles[49], quantiles[98]
    else:
        p50, p99 = statistics.median(run["p50"] for run in runs), max(run["p99"] for run in runs)
    return {
        "bookings": created,
        "statuses": statuses,
        "seconds": round(elapsed, 2),
        "bookings_per_s": round(created / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(p50 * 1000, 2),
        "p99_ms": round(p99 * 1000, 2),
        "client_cpu_pct_of_machine": round(100 * client_cpu / elapsed / (os.cpu_count() or 1), 1),
    }


def _say(message: str) -> None:
    """A progress line on stderr (stdout carries only the JSON report)."""
    print(f"[{Path(__file__).stem} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    database = f"tourapp_bench_{os.getpid()}"
    env = _bench_env(database)
    _admin_sql(env, f'CREATE DATABASE "{database}"')
    servers: list[subprocess.Popen] = []
    log = tempfile.NamedTemporaryFile("w+", prefix="bench_bookings_gunicorn_", suffix=".log", delete=False)  # noqa: SIM115 - closed in finally
    load_before = os.getloadavg()
    try:
        _say(f"seeding database {database}")
        tokens, departure_ids = _seed(env)
        apps = {
            "with_outbox": "tourapp.wsgi:application",
            "without_outbox": "bench_bookings_http:bench_app('without_outbox')",
        }
        ports = {variant: _free_port() for variant in apps}
        _say(f"starting gunicorn for {', '.join(ports)}")
        for variant, port in ports.items():
            servers.append(_start_gunicorn(apps[variant], port, env, log))
            _wait_ready(port, servers[-1])
        for port in ports.values():  # warm every worker's connections and code paths
            _load(port, tokens, departure_ids, WARMUP_SECONDS)
        runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in ports}
        order = list(ports.items())
        for round_number in range(ROUNDS):
            for variant, port in order:
                _say(f"round {round_number + 1}/{ROUNDS}: {variant}, {ROUND_SECONDS:g} s of load")
                runs[variant].append(_load(port, tokens, departure_ids, ROUND_SECONDS))
                _say(f"  {variant}: {_rate(runs[variant][-1]):.0f} bookings/s")
            order.reverse()  # with, without, without, with, ...: neither variant always goes first

        from bookings.models import Booking
        from messaging.models import OutboxEvent

        results = {variant: _summary(variant_runs) for variant, variant_runs in runs.items()}
        with_, without = results["with_outbox"], results["without_outbox"]
        report = {
            "benchmark": "bookings_http",
            "machine_cores": os.cpu_count(),
            "client": "wrk (1 thread, event loop)" if CLIENT == "wrk" else f"python ({THREADS} threads)",
            "client_connections": THREADS,
            "gunicorn": f"{GUNICORN_WORKERS} {GUNICORN_CLASS} workers x {GUNICORN_THREADS} thread(s)",
            "rounds": ROUNDS,
            "round_seconds": ROUND_SECONDS,
            "with_outbox": with_,
            "without_outbox": without,
            "throughput_ratio_with_over_without": round(with_["bookings_per_s"] / without["bookings_per_s"], 3)
            if without["bookings_per_s"]
            else None,
            "outbox_overhead_pct": round(100 * (1 - with_["bookings_per_s"] / without["bookings_per_s"]), 1)
            if without["bookings_per_s"]
            else None,
            # Each round of one variant against the adjacent round of the other (same machine state).
            "outbox_overhead_pct_per_round": [
                round(100 * (1 - _rate(w) / _rate(o)), 1)
                for w, o in zip(runs["with_outbox"], runs["without_outbox"], strict=True)
            ],
            "bookings_per_s_per_round": {variant: [round(_rate(run), 1) for run in rs] for variant, rs in runs.items()},
            "p50_ratio_with_over_without": round(with_["p50_ms"] / without["p50_ms"], 3) if without["p50_ms"] else None,
            "load_average_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
            "gunicorn_log": log.name,
            "sanity": {
                "bookings_in_db": Booking.objects.count(),
                "outbox_events_in_db": OutboxEvent.objects.count(),
            },
            "targets": {
                "bookings_per_s>=400": with_["bookings_per_s"] >= 400,
                "p99_ms<=50": with_["p99_ms"] <= 50,
                "outbox_overhead<=10%": without["bookings_per_s"] > 0
                and with_["bookings_per_s"] >= 0.9 * without["bookings_per_s"],
            },
        }
        print(json.dumps(report, indent=2))
    finally:
        for server in servers:
            _stop(server)
        log.close()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: S110 - Django may not have been set up if seeding failed
            pass
        _admin_sql(env, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        _delete_bench_queue(env)
        shutil.rmtree(env["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


if __name__ == "__main__":
    main()
