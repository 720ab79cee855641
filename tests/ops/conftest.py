"""Fixtures for the operations tests: a real Celery worker process, reaped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]


def stop_process(proc: subprocess.Popen[bytes], *, grace_s: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child process that shares this test process's names (queues, keys, topics).

    Spelled out from the loaded settings rather than inherited from ``os.environ``: what the
    child reads must match what this process actually uses.
    """
    from django.conf import settings

    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "REDIS_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        "EVENTS_EXCHANGE": settings.EVENTS_EXCHANGE,
        "EVENTS_QUEUE_PREFIX": settings.EVENTS_QUEUE_PREFIX,
        "KAFKA_TOPIC": settings.KAFKA_TOPIC,
        "KAFKA_CONSUMER_GROUP": settings.KAFKA_CONSUMER_GROUP,
        "CELERY_TASK_DEFAULT_QUEUE": settings.CELERY_TASK_DEFAULT_QUEUE,
        **extra,
    }


def worker_start(*, hostname: str, log_path: Path) -> subprocess.Popen[bytes]:
    """A real ``celery worker`` (solo pool, a queue of its own) with JSON logs into ``log_path``."""
    env = subprocess_env(LOG_FORMAT="json", TOURAPP_ROLE="worker")
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [
                *[sys.executable, "-m", "celery", "-A", "tourapp", "--quiet", "worker", "--pool", "solo"],
                *["--without-mingle", "--without-gossip", "-n", hostname, "-Q", f"ops-test.{uuid.uuid4().hex[:8]}"],
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def worker_wait_alive(proc: subprocess.Popen[bytes], *, hostname: str, log_path: Path) -> None:
    from ops.heartbeat import workers_alive

    wait_until(
        lambda: hostname in workers_alive() or proc.poll() is not None,
        timeout=60,
        what=f"worker {hostname} heartbeat (log: {log_path})",
    )
    if proc.poll() is not None:
        pytest.fail(f"celery worker exited early:\n{log_path.read_text()[-3000:]}")


class WorkerProcess:
    def __init__(self, proc: subprocess.Popen[bytes], hostname: str, log_path: Path) -> None:
        self.proc = proc
        self.hostname = hostname
        self.log_path = log_path

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines()


@pytest.fixture(scope="module")
def celery_worker_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """A live worker for the module, stopped (by PID) at the end."""
    hostname = f"ops-test-{uuid.uuid4().hex[:8]}@localhost"
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    proc = worker_start(hostname=hostname, log_path=log_path)
    try:
        worker_wait_alive(proc, hostname=hostname, log_path=log_path)
        yield WorkerProcess(proc, hostname, log_path)
    finally:
        stop_process(proc)
