"""Logs: JSON lines with role, correlation id and event/booking ids, from every kind of process."""

from __future__ import annotations

import io
import json
import logging
import socket
import subprocess
import sys
import urllib.request

import pytest

from tests.ops.conftest import ROOT, WorkerProcess, stop_process, subprocess_env, wait_until
from tourapp.correlation import correlation_scope
from tourapp.logging import ConsoleFormatter, ContextFilter, JsonFormatter


def _logger_into(stream: io.StringIO, formatter: logging.Formatter) -> logging.Logger:
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"tests.ops.{id(stream)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def test_json_line_carries_role_correlation_id_and_the_event_and_booking_ids(settings):
    # given
    settings.LOG_ROLE = "kafka-consumer"
    stream = io.StringIO()
    logger = _logger_into(stream, JsonFormatter())
    # when a consumer logs while handling an event
    with correlation_scope("corr-123", event_id="e-1", booking_id=42):
        logger.info("applied", extra={"handler": "availability"})
    # then
    line = json.loads(stream.getvalue())
    assert line["role"] == "kafka-consumer"
    assert line["level"] == "INFO"
    assert line["msg"] == "applied"
    assert line["correlation_id"] == "corr-123"
    assert line["event_id"] == "e-1"
    assert line["booking_id"] == "42"
    assert line["handler"] == "availability"
    assert line["ts"].endswith("+00:00")


def test_console_line_is_readable_and_still_shows_the_ids():
    # given
    stream = io.StringIO()
    logger = _logger_into(stream, ConsoleFormatter())
    # when
    with correlation_scope("corr-456", booking_id=7):
        logger.warning("seats low")
    # then
    line = stream.getvalue().strip()
    assert "WARNING" in line
    assert "[corr-456]" in line
    assert "seats low" in line
    assert line.endswith("booking_id=7")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def gunicorn_web(tmp_path):
    """gunicorn as the Procfile runs it (our config file, multiprocess metrics), on a free port."""
    port = _free_port()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    log_path = tmp_path / "web.log"
    env = subprocess_env(LOG_FORMAT="json", TOURAPP_ROLE="web", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                *[sys.executable, "-m", "gunicorn", "tourapp.wsgi", "-c", "tourapp/ops/gunicorn.conf.py"],
                *["--bind", f"127.0.0.1:{port}", "--workers", "1"],
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            return urllib.request.urlopen(f"{base}/health/live", timeout=2).status == 200  # noqa: S310 - local test server
        except OSError:
            return proc.poll() is not None

    try:
        wait_until(answers, deadline_s=60, what="gunicorn to answer /health/live")
        assert proc.poll() is None, log_path.read_text()[-3000:]
        yield base, log_path, metrics_dir, env
    finally:
        stop_process(proc)


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_gunicorn_access_log_is_a_json_line_with_the_request_and_its_correlation_id(gunicorn_web):
    # given
    base, log_path, _metrics_dir, _env = gunicorn_web
    request = urllib.request.Request(f"{base}/health/live", headers={"X-Correlation-ID": "trace-abc"})  # noqa: S310 - local test server
    # when
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - local test server
        assert response.headers["X-Correlation-ID"] == "trace-abc"

    # then
    def access_line() -> dict | None:
        lines = _json_lines(log_path.read_text())
        return next(
            (ln for ln in lines if ln["logger"] == "gunicorn.access" and ln["correlation_id"] == "trace-abc"), None
        )

    line = wait_until(access_line, deadline_s=10, what="the access log line")
    assert line["role"] == "web"
    assert line["path"] == "/health/live"
    assert line["status"] == "200"
    assert line["http_method"] == "GET"
    assert isinstance(line["duration_ms"], int)
    assert any(ln["logger"] == "gunicorn.error" for ln in _json_lines(log_path.read_text()))


def test_gunicorn_metrics_sum_samples_written_by_other_processes(gunicorn_web):
    # given another process (a worker, the Kafka consumer) counted a dead-lettered message
    base, _log_path, _metrics_dir, env = gunicorn_web
    code = (
        "from tourapp import metrics\n"
        "metrics.CONSUMER_DEAD_LETTERED.labels(handler='notifications', transport='rabbitmq').inc()\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)
    # when
    body = urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode()  # noqa: S310 - local test server
    # then
    assert 'tourapp_consumer_dead_lettered_total{handler="notifications",transport="rabbitmq"} 1.0' in body
    assert "django_http_requests_total_by_method_total" in body


def test_celery_worker_logs_json_lines_with_its_role(celery_worker_process: WorkerProcess):
    # given a running worker (started with LOG_FORMAT=json, TOURAPP_ROLE=worker)
    # when it has started
    lines = _json_lines(celery_worker_process.log_path.read_text())
    # then its log records are JSON lines carrying role and correlation id fields
    assert lines, celery_worker_process.log_path.read_text()[-2000:]
    assert all(line["role"] == "worker" and "correlation_id" in line for line in lines)
    assert any(line["logger"] == "celery.apps.worker" and "ready" in line["msg"] for line in lines)
