"""Logs: JSON lines with role, correlation id and event/booking ids, from every kind of process."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from django.test import RequestFactory

from notifications.email_backends import MaskedLogEmailBackend
from tests.ops.conftest import ROOT, WorkerProcess, stop_process, subprocess_env
from tests.support.database import subprocess_database_url
from tests.support.waiting import wait_until
from tourapp.correlation import correlation_scope
from tourapp.logging import ConsoleFormatter, ContextFilter, HousekeepingFilter, JsonFormatter, redact_secrets


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
    yield from _gunicorn(tmp_path, log_format="json")


@pytest.fixture(params=["json", "console"])
def gunicorn_any_format(request, tmp_path):
    """The same gunicorn, once with each log format."""
    yield from _gunicorn(tmp_path, log_format=request.param)


def _gunicorn(tmp_path, *, log_format: str):
    port = _free_port()
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    log_path = tmp_path / "web.log"
    env = subprocess_env(LOG_FORMAT=log_format, TOURAPP_ROLE="web", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [
                *[sys.executable, "-m", "gunicorn", "tourapp.wsgi", "-c", "tourapp/gunicorn.conf.py"],
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
        wait_until(answers, timeout=60, what="gunicorn to answer /health/live")
        assert proc.poll() is None, log_path.read_text()[-3000:]
        yield base, log_path, metrics_dir, env
    finally:
        stop_process(proc)


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_gunicorn_access_log_redacts_query_string_secrets_in_both_formats(gunicorn_any_format):
    # given
    base, log_path, _metrics_dir, _env = gunicorn_any_format
    query = "token=tok-SECRET-1&page=2&password=pw-SECRET-2&api_key=key-SECRET-3&signature=sig-SECRET-4"
    request = urllib.request.Request(  # noqa: S310 - local test server
        f"{base}/health/live?{query}",
        headers={"X-Correlation-ID": "trace-redact", "Referer": "http://127.0.0.1/?session=ses-SECRET-5"},
    )
    # when
    urllib.request.urlopen(request, timeout=5).close()  # noqa: S310 - local test server
    # then
    access = wait_until(
        lambda: [ln for ln in log_path.read_text().splitlines() if "trace-redact" in ln and "/health/live" in ln],
        timeout=10,
        what="the access log line",
    )
    text = log_path.read_text()
    assert "SECRET" not in text, [ln for ln in text.splitlines() if "SECRET" in ln]
    assert "page=2" in access[0]
    assert "token=[REDACTED]" in access[0] or "token=%5BREDACTED%5D" in access[0]


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

    line = wait_until(access_line, timeout=10, what="the access log line")
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


# --- quiet by default: an idle system prints next to nothing on the development console
HOUSEKEEPING_TASK = "messaging.tasks.outbox_sweep_task"
IDLE_WINDOW_SECONDS = 30
IDLE_LINES_PER_MINUTE_BUDGET = 6
# Production periods, not the e2e harness's fast safety nets: this measures what `make run` prints.
PRODUCTION_PERIODS_ENV = {
    "OUTBOX_SWEEP_SECONDS": "5",
    "OUTBOX_BACKOFF_BASE_SECONDS": "1",
    "OUTBOX_BACKOFF_MAX_SECONDS": "300",
    "NOTIFICATION_SWEEP_AFTER_SECONDS": "600",
    "LOG_FORMAT": "console",
    "LOG_LEVEL": "INFO",
}


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)  # the processes read the test database
def test_an_idle_worker_and_beat_print_at_most_six_console_lines_a_minute(tmp_path):
    # given a Celery worker and beat as `make run` starts them (console format, INFO, 5 s sweeps)
    from ops.heartbeat import workers_alive
    from tests.e2e.harness import System

    system = System(database_url=subprocess_database_url(), log_dir=tmp_path, extra_env=PRODUCTION_PERIODS_ENV)
    try:
        system.start("worker", "beat")
        worker, beat = system.processes["worker"], system.processes["beat"]
        offsets = {name: len(proc.log_text()) for name, proc in (("worker", worker), ("beat", beat))}
        # when they stay idle for the window (six sweeps and their fan-out would run in it)
        end = time.monotonic() + IDLE_WINDOW_SECONDS
        while time.monotonic() < end:
            assert worker.alive() and beat.alive(), system.dump_logs()
            time.sleep(0.5)
        assert any(system.node in name for name in workers_alive()), "the worker was not alive during the window"
        # then
        printed = {name: system.processes[name].log_text()[offset:].splitlines() for name, offset in offsets.items()}
        startup = worker.log_text()[: offsets["worker"]]
    finally:
        system.stop_all()
    # a worker started as root says so in one line, not Celery's eight-line SecurityWarning
    assert "superuser privileges" not in startup
    if os.geteuid() == 0:
        assert startup.count("worker runs as root") == 1
    lines = [f"{name}: {line}" for name, text in printed.items() for line in text if line.strip()]
    per_minute = len(lines) * 60 / IDLE_WINDOW_SECONDS
    print(f"idle console lines: {len(lines)} in {IDLE_WINDOW_SECONDS} s = {per_minute:.0f}/min")
    assert per_minute <= IDLE_LINES_PER_MINUTE_BUDGET, "\n".join(lines[:40])
    assert not [line for line in lines if "data={" in line]


# --- no secret or personal data in log lines
def test_redact_secrets_replaces_the_values_of_secret_query_parameters_only():
    assert redact_secrets("GET /api/x?token=abc&page=2 HTTP/1.1") == "GET /api/x?token=[REDACTED]&page=2 HTTP/1.1"
    assert redact_secrets("password=hunter2&next=/a") == "password=[REDACTED]&next=/a"
    assert redact_secrets("/cb?X-Amz-Signature=f00&Api_Key=k;client_secret=s") == (
        "/cb?X-Amz-Signature=[REDACTED]&Api_Key=[REDACTED];client_secret=[REDACTED]"
    )
    assert redact_secrets("booking_id=7 seats=2") == "booking_id=7 seats=2"


@pytest.mark.django_db
def test_django_request_records_carry_no_query_secret_and_a_4xx_adds_no_second_line(client, caplog):
    # given a request logged by Django itself (an error on a 500 would look the same)
    stream = io.StringIO()
    logger = _logger_into(stream, ConsoleFormatter())
    record = logging.LogRecord("django.request", logging.ERROR, __file__, 1, "Internal Server Error: %s", ("/x",), None)
    record.request = RequestFactory().get("/x", {"token": "tok-SECRET", "page": "2"})
    record.status_code = 500
    # when
    logger.handle(record)
    # then
    line = stream.getvalue()
    assert "SECRET" not in line and "token=[REDACTED]" in line and "page=2" in line

    # and a 404 is one line (the access log's), with no django.request WARNING beside it
    with caplog.at_level(logging.DEBUG):
        assert client.get("/api/no-such-thing/?token=tok-SECRET").status_code == 404
    assert not [r for r in caplog.records if r.name == "django.request"]


def test_the_development_email_backend_logs_one_masked_line_per_message(caplog):
    # given
    from django.core.mail import EmailMessage

    backend = MaskedLogEmailBackend()
    messages = [
        EmailMessage("Booking confirmed: Paris City Tour", "Dear Alice, ...", to=["alice.smith@example.com"]),
        EmailMessage("Booking confirmed: Loire", "body", to=["bob@example.org"], cc=["carol@example.net"]),
    ]
    # when
    with caplog.at_level(logging.INFO, logger="notifications.email"):
        sent = backend.send_messages(messages)
    # then
    lines = [r.getMessage() for r in caplog.records if r.name == "notifications.email"]
    assert sent == 2 and len(lines) == 2
    assert lines[0].startswith("email to a***@example.com: 'Booking confirmed: Paris City Tour' (")
    assert lines[0].endswith(" bytes)")
    assert "b***@example.org, c***@example.net" in lines[1]
    assert not [ln for ln in lines if "alice" in ln or "Dear" in ln or "bob@" in ln]


def test_the_development_default_email_backend_is_the_masked_one():
    result = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.EMAIL_BACKEND)"],
        cwd=ROOT,
        env={
            **{
                k: v for k, v in subprocess_env().items() if k not in {"EMAIL_BACKEND", "DJANGO_ENV", "TOURAPP_TESTING"}
            },
            "DJANGO_SETTINGS_MODULE": "tourapp.settings",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "notifications.email_backends.MaskedLogEmailBackend"


# --- quiet by default: housekeeping lines are DEBUG
def _celery_record(logger_name: str, msg: str, args: object, level: int = logging.INFO) -> logging.LogRecord:
    record = logging.LogRecord(logger_name, level, __file__, 1, msg, None, None)
    record.args = args  # Celery passes one mapping, as logging stores it
    record.data = args
    return record


@pytest.mark.parametrize(
    ("record", "quiet"),
    [
        (_celery_record("celery.beat", "Scheduler: Sending due task %s (%s)", ("outbox-sweep", "x")), True),
        (_celery_record("celery.worker.strategy", "Task %(name)s received", {"name": HOUSEKEEPING_TASK}), True),
        (_celery_record("celery.app.trace", "Task %(name)s succeeded", {"name": HOUSEKEEPING_TASK}), True),
        (_celery_record("celery.app.trace", "Task %(name)s succeeded", {"name": "notifications.tasks.x"}), False),
        (
            _celery_record("celery.app.trace", "Task %(name)s raised", {"name": HOUSEKEEPING_TASK}, logging.ERROR),
            False,
        ),
        (_celery_record("celery.beat", "beat: Starting...", ()), False),
    ],
)
def test_periodic_housekeeping_lines_are_debug_and_hidden_at_info(record, quiet):
    # given the root logger at INFO (LOG_LEVEL's default)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    try:
        kept = HousekeepingFilter().filter(record)
    finally:
        root.setLevel(level)
    # then
    assert kept is not quiet
    assert (record.levelname == "DEBUG") is quiet


def test_periodic_housekeeping_lines_show_with_log_level_debug():
    record = _celery_record("celery.app.trace", "Task %(name)s succeeded", {"name": HOUSEKEEPING_TASK})
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        assert HousekeepingFilter().filter(record)
    finally:
        root.setLevel(level)
    assert record.levelname == "DEBUG"


def test_console_lines_leave_out_celerys_data_extra():
    stream = io.StringIO()
    logger = _logger_into(stream, ConsoleFormatter())
    record = _celery_record("celery.app.trace", "Task %(name)s succeeded", {"name": "notifications.tasks.x"})
    logger.handle(record)
    assert "data=" not in stream.getvalue()
    assert "Task notifications.tasks.x succeeded" in stream.getvalue()
