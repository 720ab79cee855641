"""Structured logging: every record carries role, correlation id and event/booking ids when known.

``LOG_FORMAT=json`` (production, tests) writes one JSON object per line; ``console``
(development) writes a readable line with the same fields. Django, gunicorn (error and access
logs, see ``tourapp/ops/gunicorn.conf.py``), Celery worker and beat (see
``tourapp/ops/celery_hooks.py``) and the Kafka consumer all use this one configuration.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from django.conf import settings

from tourapp.correlation import get_correlation_id, get_log_context

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "role", "correlation_id"}
_CORRELATION_ATOM = "{x-correlation-id}o"  # gunicorn access-log atom: our response header


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
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class ContextFilter(logging.Filter):
    """Adds ``role``, ``correlation_id`` and the current log context to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.role = getattr(settings, "LOG_ROLE", "app")
        atoms = record.args if record.name == "gunicorn.access" and isinstance(record.args, Mapping) else {}
        atom_cid = atoms.get(_CORRELATION_ATOM) if atoms else None
        record.correlation_id = (
            getattr(record, "correlation_id", None) or get_correlation_id() or (atom_cid if atom_cid != "-" else None)
        ) or "-"
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
            "msg": record.getMessage(),
            "correlation_id": getattr(record, "correlation_id", "-"),
        }
        payload.update(_extras(record))
        payload.update({k: v for k, v in _gunicorn_access_fields(record).items() if v not in (None, "-")})
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class ConsoleFormatter(logging.Formatter):
    """Readable development line; extras (event_id, booking_id, ...) follow as ``key=value``."""

    default_format = "%(asctime)s %(levelname)-7s %(role)s [%(correlation_id)s] %(name)s: %(message)s"

    def __init__(self, fmt: str | None = None, datefmt: str | None = None) -> None:
        super().__init__(fmt or self.default_format, datefmt)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return line
