"""Structured logging: every record carries role, correlation id and event/booking ids when known.

``LOG_FORMAT=json`` (production, tests) writes one JSON object per line; ``console``
(development) writes a readable line with the same fields. Django, gunicorn (error and access
logs, see ``tourapp/gunicorn.conf.py``), Celery worker and beat (see
``ops/celery_hooks.py``) and the Kafka consumer all use this one configuration.

Guarantees of this configuration:

- No secret from a URL's query string reaches a log line: values of parameters whose name says
  token, password, key, secret, signature, auth, session or code are replaced by ``[REDACTED]``
  in every message, in gunicorn's access atoms (request line, query, referer: both formats) and
  in the request that Django attaches to its ``django.request`` records.
- Quiet by default (``HousekeepingFilter``): beat's "Sending due task" lines and Celery's
  "received" / "succeeded" lines for the periodic housekeeping tasks (those in
  ``CELERY_BEAT_SCHEDULE``) are DEBUG records, shown only with ``LOG_LEVEL=DEBUG``; the console
  format leaves out Celery's ``data={...}`` (the JSON format keeps it).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache

from django.conf import settings

from tourapp.correlation import get_correlation_id, get_log_context

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "role", "correlation_id"}
_CORRELATION_ATOM = "{x-correlation-id}o"  # gunicorn access-log atom: our response header
# gunicorn access atoms that carry a URL or a query string: request line, query, referer, path.
_URL_ATOMS = ("r", "q", "f", "U")
# A query parameter whose name contains one of these words: its value is a secret.
_SECRET_PARAMETER = re.compile(
    r"(?i)((?:^|[?&;])[^=&;#\s\"']*(?:token|passw|pwd|secret|key|signature|sig|auth|session|code)[^=&;#\s\"']*=)"
    r"[^&;#\s\"']*"
)
REDACTED = "[REDACTED]"
_CELERY_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")


def redact_secrets(text: str) -> str:
    """``/api/x?token=abc&page=2`` -> ``/api/x?token=[REDACTED]&page=2`` (also a bare query string)."""
    if "=" not in text:
        return text
    return _SECRET_PARAMETER.sub(rf"\1{REDACTED}", text)


def _redacted_request(request: object) -> str:
    """What a ``django.request`` record's ``request`` shows: method and path, query secrets redacted."""
    method = getattr(request, "method", "?")
    get_full_path = getattr(request, "get_full_path", None)
    path = get_full_path() if callable(get_full_path) else "?"
    return redact_secrets(f"{method} {path}")


def _gunicorn_access_fields(record: logging.LogRecord) -> dict[str, object]:
    """Request fields of a gunicorn access-log record (its args are gunicorn's atoms)."""
    atoms = record.args
    if record.name != "gunicorn.access" or not isinstance(atoms, Mapping):
        return {}
    return {
        "http_method": atoms.get("m"),
        "path": atoms.get("U"),
        "query": atoms.get("q") or None,
        "status": atoms.get("s"),
        "duration_ms": atoms.get("M"),
        "bytes": atoms.get("B"),
        "remote_addr": atoms.get("h"),
        "user_agent": atoms.get("a"),
    }


def _extras(record: logging.LogRecord) -> dict[str, object]:
    """Fields added to the record (``extra=``, log context) beyond the standard ones."""
    extras = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
    if "request" in extras and not isinstance(extras["request"], str):
        extras["request"] = _redacted_request(extras["request"])  # its repr carries the query string
    return extras


@cache
def _housekeeping_tasks() -> frozenset[str]:
    return frozenset(str(entry["task"]) for entry in settings.CELERY_BEAT_SCHEDULE.values())


class HousekeepingFilter(logging.Filter):
    """Periodic housekeeping is DEBUG detail: beat's "Sending due task" lines and Celery's per-task
    "received" / "succeeded" lines of the beat-scheduled tasks become DEBUG records, dropped unless
    the root logger (``LOG_LEVEL``) shows DEBUG. Failures, retries and every other task stay as they are.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not self._housekeeping(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)

    @staticmethod
    def _housekeeping(record: logging.LogRecord) -> bool:
        if record.name == "celery.beat":
            return str(record.msg).startswith("Scheduler: Sending due task")
        if record.name in _CELERY_TASK_LOGGERS and isinstance(record.args, Mapping):
            return record.args.get("name") in _housekeeping_tasks()
        return False


class ContextFilter(logging.Filter):
    """Adds ``role``, ``correlation_id`` and the current log context to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.role = getattr(settings, "LOG_ROLE", "app")
        atoms = record.args if record.name == "gunicorn.access" and isinstance(record.args, Mapping) else {}
        atom_cid = atoms.get(_CORRELATION_ATOM) if atoms else None
        record.correlation_id = (
            getattr(record, "correlation_id", None) or get_correlation_id() or (atom_cid if atom_cid != "-" else None)
        ) or "-"
        if atoms:  # a copy: gunicorn's own atoms stay as they are
            record.args = {
                k: redact_secrets(v) if k in _URL_ATOMS and isinstance(v, str) else v for k, v in atoms.items()
            }
        for key, value in get_log_context().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, role, logger, msg, correlation_id and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "role": getattr(record, "role", "app"),
            "logger": record.name,
            "msg": redact_secrets(record.getMessage()),
            "correlation_id": getattr(record, "correlation_id", "-"),
        }
        payload.update(_extras(record))
        payload.update({k: v for k, v in _gunicorn_access_fields(record).items() if v not in (None, "-")})
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class ConsoleFormatter(logging.Formatter):
    """Readable development line; extras (event_id, booking_id, ...) follow as ``key=value``.

    Celery's ``data`` extra (the whole task context, already summarised by the message) is left out.
    """

    default_format = "%(asctime)s %(levelname)-7s %(role)s [%(correlation_id)s] %(name)s: %(message)s"

    def __init__(self, fmt: str | None = None, datefmt: str | None = None) -> None:
        super().__init__(fmt or self.default_format, datefmt)

    def format(self, record: logging.LogRecord) -> str:
        line = redact_secrets(super().format(record))
        extras = _extras(record)
        if record.name.startswith("celery."):
            extras.pop("data", None)
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return line
