"""Capacity: step the offered booking rate and find the highest one the side effects keep pace with.

    .venv/bin/python bench/capacity.py [--rates 50,100,150,200,250,300] [--seconds 60]

For each step it offers ``rate`` one-seat bookings a second over HTTP for ``--seconds``, then
waits until every booking of the step has its confirmation email sent, its availability update
applied and (when the payments app is installed) its payment settled. Per step it reports:

- booking -> email sent, booking -> availability applied, booking -> payment settled: p50 / p99;
- HTTP POST p50 / p99 and the rate achieved;
- the backlog when the load stops (outbox rows pending per destination, emails not sent,
  availability updates not applied, payments not settled) and the time it took to drain;
- CPU per booking, in milliseconds, per process: web, worker (its main process apart), beat,
  Kafka consumer, payment gateway, and the services (PostgreSQL, RabbitMQ, Kafka, Redis), read
  from ``/proc`` over the step's load and drain; plus the raw Celery hop and AMQP floor of
  ``bench_e2e_latency`` once, as the baseline of the run.

The sustained capacity is the highest step whose p99 booking -> email (and -> payment settled)
stays at most 5 s and whose backlog drained within 5 s of the load stopping. Stepping stops after
the first step whose drain exceeds ``--drain-timeout`` (the system is past its capacity; the
next steps would only measure a queue).

Prints one JSON object on stdout, writes it to ``bench/out/capacity-<time>.json`` and plots the
steps to ``bench/out/capacity-<time>.png``. Loopback only, bounded: the default run offers
63,000 bookings over six minutes plus drains, in a throw-away database (dropped at the end).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"
EMAIL_P99_BOUND_S = 5.0
DRAIN_BOUND_S = 5.0
# The services' processes, by the command name the kernel shows (measured, never signalled).
SERVICE_COMMANDS = {"postgres": "postgresql", "beam.smp": "rabbitmq", "java": "kafka", "redis-server": "redis"}


def _load_e2e() -> Any:
    """bench_e2e_latency as a module: its environment, database, pacing and baseline helpers."""
    spec = importlib.util.spec_from_file_location("bench_e2e_latency", ROOT / "bench" / "bench_e2e_latency.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


e2e = _load_e2e()
sys.path.insert(0, str(ROOT / "bench"))
import profiles  # noqa: E402 - bench/ is not a package: its helpers load once the path is set


def _log(message: str) -> None:
    print(f"[capacity {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="50,100,150,200,250,300", help="offered bookings per second, per step")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each step's load")
    parser.add_argument("--clients", type=int, default=24, help="HTTP client threads (enough to hold the pace)")
    parser.add_argument("--users", type=int, default=400, help="booking users (the per-user throttle is 120/min)")
    parser.add_argument("--departures", type=int, default=100)
    parser.add_argument("--web-workers", type=int, default=3)
    parser.add_argument("--worker-concurrency", type=int, default=4, help="as in the Procfile")
    parser.add_argument("--drain-timeout", type=float, default=60.0)
    parser.add_argument(
        "--profile", action="store_true", help="sample every application process with py-spy during each step's load"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", "postgres://tourapp:tourapp@127.0.0.1:5432/tourapp"),
        help="server and credentials to use; the database name is replaced by tourapp_capacity_<run>",
    )
    args = parser.parse_args()
    args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    return args


# ----------------------------------------------------------------------------- CPU from /proc
def _proc_cpu_seconds(pid_dir: Path, ticks: int) -> tuple[int, int, str, float] | None:
    """(pid, process group, command, CPU seconds) of one /proc entry."""
    try:
        raw = (pid_dir / "stat").read_text()
    except OSError:
        return None
    command = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw.rsplit(")", 1)[1].split()
    return int(pid_dir.name), int(fields[2]), command, (int(fields[11]) + int(fields[12])) / ticks


def _cpu_by_process(system: Any) -> dict[tuple[str, int], float]:
    """CPU seconds used so far by every process of a harness role (its process group) or a service,
    keyed by (role, pid): PostgreSQL backends and pool children come and go, so steps compare pid by pid."""
    ticks = os.sysconf("SC_CLK_TCK")
    leaders = {proc.pid: name for name, proc in system.processes.items() if proc.pid}
    worker_pid = system.processes["worker"].pid
    used: dict[tuple[str, int], float] = {}
    for pid_dir in Path("/proc").glob("[0-9]*"):
        entry = _proc_cpu_seconds(pid_dir, ticks)
        if entry is None:
            continue
        pid, group, command, seconds = entry
        role = leaders.get(group)
        if role is not None:
            used[(role, pid)] = seconds
            if pid == worker_pid:
                used[("worker_main_process", pid)] = seconds
        elif command in SERVICE_COMMANDS:
            used[(SERVICE_COMMANDS[command], pid)] = seconds
    times = os.times()
    used[("bench_client", os.getpid())] = times.user + times.system
    return used


def _cpu_ms_per_booking(
    before: dict[tuple[str, int], float], after: dict[tuple[str, int], float], bookings: int
) -> dict[str, Any]:
    """Per role, the CPU its processes used between the snapshots (a process that ended in between
    is not counted: short-lived, it is small), in milliseconds per booking."""
    per: dict[str, float] = {}
    for (role, pid), seconds in after.items():
        per[role] = per.get(role, 0.0) + seconds - before.get((role, pid), 0.0)
    per = {role: round(value * 1000 / max(bookings, 1), 2) for role, value in per.items()}
    app_and_services = sum(v for k, v in per.items() if k not in ("worker_main_process", "bench_client"))
    return {"per_process": per, "total_without_bench_client": round(app_and_services, 2)}


def _profiled_pids(system: Any) -> dict[str, list[int]]:
    """The application's pids by role, the worker's main process apart from its pool (beat aside)."""
    leaders = {proc.pid: name for name, proc in system.processes.items() if proc.pid and name != "beat"}
    worker_pid = system.processes["worker"].pid
    pids: dict[str, list[int]] = {}
    for pid_dir in Path("/proc").glob("[0-9]*"):
        entry = _proc_cpu_seconds(pid_dir, 1)
        if entry is None or entry[1] not in leaders:
            continue
        pid, group = entry[0], entry[1]
        role = leaders[group]
        if role == "worker":
            role = "worker_main_process" if pid == worker_pid else "worker_pool"
        elif role == "web" and pid == group:
            continue  # gunicorn's arbiter only supervises
        pids.setdefault(role, []).append(pid)
    return pids


# ----------------------------------------------------------------------------- side effects
def _payments_installed() -> bool:
    from django.apps import apps

    return apps.is_installed("payments")


def _side_effect_times(booking_ids: list[int]) -> dict[str, dict[int, float]]:
    """Per booking: when its email was sent, its availability applied, its payment settled."""
    from messaging.models import OutboxEvent, ProcessedMessage
    from notifications.models import Notification

    keys = [str(b) for b in booking_ids]
    emails = {
        int(b): at.timestamp()
        for b, at in Notification.objects.filter(
            booking_id__in=keys, channel="email", event_type="tour.booked", sent_at__isnull=False
        ).values_list("booking_id", "sent_at")
    }
    event_booking = {
        str(event_id): int(aggregate_id)
        for event_id, aggregate_id in OutboxEvent.objects.filter(
            aggregate_type="booking", aggregate_id__in=keys, event_type="tour.booked"
        ).values_list("event_id", "aggregate_id")
    }
    availability = {
        event_booking[str(e)]: at.timestamp()
        for e, at in ProcessedMessage.objects.filter(
            handler="availability", event_id__in=list(event_booking)
        ).values_list("event_id", "processed_at")
        if str(e) in event_booking
    }
    times = {"email_sent": emails, "availability_applied": availability}
    if _payments_installed():
        times["payment_settled"] = _payment_settled_times(booking_ids)
    return times


def _payment_settled_times(booking_ids: list[int]) -> dict[int, float]:
    """When each booking's charge got its final answer (captured, declined or skipped)."""
    from payments.models import Payment

    return {
        int(b): at.timestamp()
        for b, at in Payment.objects.filter(
            booking_id__in=booking_ids, kind=Payment.Kind.CHARGE, completed_at__isnull=False
        ).values_list("booking_id", "completed_at")
    }


def _backlog(booking_ids: list[int]) -> dict[str, Any]:
    from messaging.models import OutboxDelivery

    times = _side_effect_times(booking_ids)
    pending = {d: OutboxDelivery.objects.filter(destination=d, state="pending").count() for d in ("rabbitmq", "kafka")}
    return {
        "outbox_pending": pending,
        **{f"{k}_missing": len(booking_ids) - len(v) for k, v in times.items()},
    }


def _drained(booking_ids: list[int]) -> bool:
    backlog = _backlog(booking_ids)
    return not any(v for k, v in backlog.items() if k.endswith("_missing")) and not any(
        backlog["outbox_pending"].values()
    )


def _wait_drained(booking_ids: list[int], *, timeout: float) -> float | None:
    from django.db import close_old_connections

    started = time.monotonic()
    while time.monotonic() - started < timeout:
        close_old_connections()
        if _drained(booking_ids):
            return time.monotonic() - started
        time.sleep(0.1)
    return None


# ----------------------------------------------------------------------------- one step
def _step(system: Any, *, rate: float, args: argparse.Namespace, tokens: list[str], departure_ids: list[int]) -> dict:
    from django.db import close_old_connections

    count = max(1, round(rate * args.seconds))
    _log(f"step {rate:g}/s: {count} bookings over {args.seconds:g} s")
    cpu_before = _cpu_by_process(system)
    load_started = time.monotonic()
    with contextlib.ExitStack() as stack:
        samples = None
        if args.profile:
            samples = stack.enter_context(
                profiles.sampling(
                    _profiled_pids(system), seconds=args.seconds, out_dir=OUT / f"profile-{e2e.RUN}-{rate:g}"
                )
            )
        records = e2e._fire_paced(
            system.base_url,
            tokens=tokens,
            departure_ids=departure_ids,
            count=count,
            rate=rate,
            clients=args.clients,
            tag=f"cap{rate:g}",
        )
    load_seconds = time.monotonic() - load_started
    profile = {role: profiles.summarize(paths) for role, paths in samples.items()} if samples else None
    ok = [r for r in records if r.get("status") == 201]
    created = [r["booking_id"] for r in ok]
    close_old_connections()
    backlog_at_stop = _backlog(created)
    drain = _wait_drained(created, timeout=args.drain_timeout)
    cpu = _cpu_ms_per_booking(cpu_before, _cpu_by_process(system), len(created))
    close_old_connections()
    answered = {r["booking_id"]: r["answered"] for r in ok}
    latencies = {
        name: e2e._summary_ms([moments[b] - t for b, t in answered.items() if b in moments])
        for name, moments in _side_effect_times(created).items()
    }
    first_sent = min(r["sent"] for r in records)
    last_answered = max(r["answered"] for r in records)
    statuses: dict[str, int] = {}
    for r in records:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    p99s = [latencies[k]["p99"] for k in ("email_sent", "payment_settled") if k in latencies]
    sustained = bool(
        drain is not None
        and drain <= DRAIN_BOUND_S
        and len(ok) == len(records)
        and all(p is not None and p <= EMAIL_P99_BOUND_S * 1000 for p in p99s)
    )
    result = {
        "offered_rate": rate,
        "achieved_rate": round(len(records) / (last_answered - first_sent), 1) if last_answered > first_sent else None,
        "bookings": len(ok),
        "http_statuses": statuses,
        "http_post_ms": e2e._summary_ms([r["answered"] - r["sent"] for r in ok]),
        "latency_ms_from_201": latencies,
        "backlog_at_load_stop": backlog_at_stop,
        "drain_seconds": round(drain, 2) if drain is not None else None,
        "load_seconds": round(load_seconds, 1),
        "cpu_ms_per_booking": cpu,
        "sustained": sustained,
    }
    if profile is not None:
        result["profile"] = profile
    _log(
        f"step {rate:g}/s: achieved {result['achieved_rate']}/s, email p99 {latencies['email_sent']['p99']} ms, "
        f"drain {result['drain_seconds']} s, CPU {cpu['total_without_bench_client']} ms/booking, sustained {sustained}"
    )
    return result


# ----------------------------------------------------------------------------- plot
def _plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = report["steps"]
    rates = [s["offered_rate"] for s in steps]
    fig, (lat, cpu) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name in ("email_sent", "availability_applied", "payment_settled"):
        p99 = [(s["latency_ms_from_201"].get(name) or {}).get("p99") for s in steps]
        if any(v is not None for v in p99):
            lat.plot(rates, [v / 1000 if v is not None else float("nan") for v in p99], marker="o", label=f"{name} p99")
    lat.plot(rates, [s["http_post_ms"]["p99"] / 1000 for s in steps], marker="x", label="HTTP POST p99")
    lat.axhline(EMAIL_P99_BOUND_S, color="grey", linestyle="--", label="5 s bound")
    lat.set_yscale("log")
    lat.set_xlabel("offered bookings/s")
    lat.set_ylabel("seconds from the 201 (log)")
    lat.set_title(f"sustained capacity: {report['sustained_capacity']} bookings/s")
    lat.legend(fontsize=8)
    roles = [
        k for k in steps[0]["cpu_ms_per_booking"]["per_process"] if k not in ("worker_main_process", "bench_client")
    ]
    bottom = [0.0] * len(steps)
    for role in roles:
        values = [s["cpu_ms_per_booking"]["per_process"].get(role, 0.0) for s in steps]
        cpu.bar([str(int(r)) for r in rates], values, bottom=bottom, label=role)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    cpu.set_xlabel("offered bookings/s")
    cpu.set_ylabel("CPU ms per booking")
    cpu.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# ----------------------------------------------------------------------------- main
def main() -> int:
    args = _parse_args()
    # SIGTERM (a timeout, Ctrl-C from a supervisor) unwinds through the finally below, which stops
    # the processes and drops the database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run = e2e.RUN
    db_name = f"tourapp_capacity_{run}"
    database_url = args.database_url.rsplit("/", 1)[0] + f"/{db_name}"
    e2e._prepare_environment(database_url)
    _log(f"creating and migrating {db_name}")
    e2e._create_and_migrate(database_url, db_name)
    # Production settings serve the admin's static files from the collected manifest.
    subprocess.run([sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, check=True)
    system = None
    steps: list[dict[str, Any]] = []
    baseline: dict[str, Any] = {}
    try:
        import django

        django.setup()
        import logging

        logging.getLogger("kafka").setLevel(logging.CRITICAL)
        from tests.e2e.harness import System, production_env, seed_bookable

        total = sum(round(r * args.seconds) for r in args.rates) + 50
        capacity = math.ceil(total / args.departures) + 10
        tokens, departure_ids = seed_bookable(
            prefix=f"capacity-{run}", users=args.users, departures=args.departures, capacity=capacity
        )
        log_dir = Path(tempfile.mkdtemp(prefix="tourapp-capacity-"))
        system = System(
            database_url=database_url,
            log_dir=log_dir,
            extra_env=production_env(),
            web_workers=args.web_workers,
            worker_concurrency=args.worker_concurrency,
        )
        _log(f"starting the system (logs in {log_dir})")
        with system:
            warm = e2e._fire_paced(
                system.base_url, tokens=tokens, departure_ids=departure_ids, count=50, rate=25, clients=4, tag="warm"
            )
            _wait_drained([r["booking_id"] for r in warm if r.get("status") == 201], timeout=60)
            baseline = {
                "celery_hop": e2e._retried_once(
                    "Celery hop baseline", lambda: e2e._celery_hop_baseline(system, hops=50, rate=50)
                ),
                "amqp": e2e._retried_once("raw AMQP baseline", lambda: e2e._raw_amqp_baseline(messages=150, rate=50)),
            }
            for rate in args.rates:
                step = _step(system, rate=rate, args=args, tokens=tokens, departure_ids=departure_ids)
                steps.append(step)
                if step["drain_seconds"] is None:
                    _log(f"step {rate:g}/s did not drain within {args.drain_timeout:g} s: stopping here")
                    break
    finally:
        if system is not None:
            system.stop_all()
            with contextlib.suppress(Exception):
                e2e._cleanup_brokers(system)
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        e2e._drop_database(args.database_url, db_name)
        _log(f"dropped {db_name}")

    sustained = [s["offered_rate"] for s in steps if s["sustained"]]
    at_100 = next((s for s in steps if s["offered_rate"] == 100), None)
    at_50 = next((s for s in steps if s["offered_rate"] == 50), None)
    report = {
        "bench": "capacity",
        "sustained_capacity": max(sustained) if sustained else 0,
        "bounds": {"email_and_payment_p99_s": EMAIL_P99_BOUND_S, "drain_s": DRAIN_BOUND_S},
        "cpu_ms_per_booking_at_100": at_100["cpu_ms_per_booking"]["total_without_bench_client"] if at_100 else None,
        "email_ms_at_50": at_50["latency_ms_from_201"]["email_sent"] if at_50 else None,
        "steps": steps,
        "raw_baseline": baseline,
        "setup": {
            "seconds_per_step": args.seconds,
            "clients": args.clients,
            "users": args.users,
            "web_workers": args.web_workers,
            "worker_concurrency": args.worker_concurrency,
            "payments": any("payment_settled" in s["latency_ms_from_201"] for s in steps),
            "cpus": os.cpu_count(),
        },
    }
    OUT.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (OUT / f"capacity-{stamp}.json").write_text(json.dumps(report, indent=1))
    if steps:
        _plot(report, OUT / f"capacity-{stamp}.png")
        report["plot"] = str(OUT / f"capacity-{stamp}.png")
    print(json.dumps(report))
    return 0 if steps and all(s["bookings"] > 0 for s in steps) else 1


if __name__ == "__main__":
    sys.exit(main())
