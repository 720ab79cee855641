"""Sampling profiles of running processes with py-spy, summarised per process.

Used by ``capacity.py --profile``: each application process is sampled while a step's load runs,
and each profile is reduced to where its samples went:

- ``by_library``: the leaf frame's library (PostgreSQL driver, Django ORM, AMQP, Kafka client,
  Celery, logging...), with the samples spent waiting (epoll, sleeps, condition variables) apart;
- ``top_first_party``: the project's functions by inclusive share (a function and what it calls).

py-spy samples threads that are running or in a system call, so waits show as samples too; the
shares therefore say where a process spends its wall time while busy, not its CPU alone (the
CPU figures come from ``/proc``, next to these in the report).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

FIRST_PARTY = (
    "tourapp/",
    "messaging/",
    "bookings/",
    "availability/",
    "payments/",
    "notifications/",
    "accounts/",
    "ops/",
)
WAIT_LEAVES = ("poll (", "select (", "epoll", "Condition.wait", "sleep (", "accept (", "_wait_for_tstate_lock")
LIBRARIES = (
    ("psycopg/", "PostgreSQL driver (psycopg)"),
    ("django/db/", "Django ORM"),
    ("amqp/", "AMQP (py-amqp)"),
    ("kombu/", "AMQP (kombu)"),
    ("kafka/", "Kafka client"),
    ("celery/", "Celery"),
    ("billiard/", "Celery pool (billiard)"),
    ("logging/", "logging"),
    ("json/", "JSON"),
    ("redis/", "Redis client"),
    ("rest_framework/", "DRF"),
    ("django/", "Django (other)"),
    ("gunicorn/", "gunicorn"),
    ("prometheus_client/", "metrics"),
    ("http/", "HTTP"),
    ("urllib", "HTTP"),
    ("socket.py", "sockets"),
    ("ssl.py", "sockets"),
)


def py_spy() -> str | None:
    """The py-spy executable next to this interpreter (requirements-dev), else on PATH."""
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


@contextmanager
def sampling(pids: dict[str, list[int]], *, seconds: float, out_dir: Path) -> Iterator[dict[str, list[Path]]]:
    """Sample every pid for ``seconds`` (py-spy ``record``, raw format, not pausing the process);
    yields {role: [raw profile paths]} and waits for the samplers when the block ends."""
    executable = py_spy()
    if executable is None:
        raise RuntimeError("py-spy is not installed (pip install -r requirements-dev.txt)")
    out_dir.mkdir(parents=True, exist_ok=True)
    samplers: list[subprocess.Popen[bytes]] = []
    paths: dict[str, list[Path]] = {}
    for role, role_pids in pids.items():
        for pid in role_pids:
            path = out_dir / f"{role}-{pid}.txt"
            paths.setdefault(role, []).append(path)
            command = [executable, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds)))]
            command += ["--rate", "100", "--format", "raw", "--nonblocking", "--output", str(path)]
            samplers.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    try:
        yield paths
    finally:
        for sampler in samplers:
            try:
                sampler.wait(timeout=seconds + 30)
            except subprocess.TimeoutExpired:
                sampler.terminate()
                sampler.wait(timeout=10)


def _library(leaf: str) -> str:
    if any(marker in leaf for marker in WAIT_LEAVES):
        return "waiting (poll, sleep, locks)"
    for marker, name in LIBRARIES:
        if marker in leaf:
            return name
    if any(f"({prefix}" in leaf for prefix in FIRST_PARTY):
        return "project code"
    return "other"


def _function(frame: str) -> str | None:
    """``function (app/module.py)`` for a first-party frame, without the line number."""
    name, _, where = frame.partition(" (")
    if not where.startswith(FIRST_PARTY):
        return None
    return f"{name} ({where.split(':')[0]})"


def summarize(paths: list[Path], *, top: int = 12) -> dict[str, Any]:
    """The shares (percent of samples) of one role's profiles, merged."""
    total = 0
    by_library: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for path in paths:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            count = int(count_text)
            frames = stack.split(";")
            total += count
            by_library[_library(frames[-1])] += count
            for function in {f for f in map(_function, frames) if f}:
                inclusive[function] += count

    def share(n: int) -> float:
        return round(100 * n / total, 1) if total else 0.0

    return {
        "samples": total,
        "by_library_pct": {name: share(n) for name, n in by_library.most_common()},
        "top_first_party_pct": {name: share(n) for name, n in inclusive.most_common(top)},
    }
