"""Structured logging: every record carries role, correlation id and event/booking ids when known."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from django.conf import settings

from tourapp.correlation import get_correlation_id, get_log_context

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "role", "correlation_id"}


class ContextFilter(logging.Filter):
    """Adds ``role``, ``correlation_id`` and the current log context to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.role = getattr(settings, "LOG_ROLE", "app")
        record.correlation_id = getattr(record, "correlation_id", None) or get_correlation_id() or "-"
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
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)
