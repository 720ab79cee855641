"""System checks: a mistyped or out-of-range setting stops ``manage.py check`` (and ``migrate``,
``runserver``) with a message naming the environment variable, instead of misbehaving later.

Every check reads ``django.conf.settings`` when it runs, never at import time. Each error says
what was given and what is expected, e.g. ``OUTBOX_DESTINATIONS contains 'kafak'``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core import checks

_DESTINATIONS = ("rabbitmq", "kafka")
_ROUTES = ("rabbitmq", "kafka", "both")
_QUEUE_TYPES = ("classic", "quorum")

# Settings that must be > 0, and those that may also be 0 (0 turns the feature off / no retry).
_POSITIVE = (
    "API_MAX_PAGE_SIZE",
    "OUTBOX_BATCH_SIZE",
    "OUTBOX_MAX_ATTEMPTS",
    "OUTBOX_BACKOFF_BASE_SECONDS",
    "OUTBOX_BACKOFF_MAX_SECONDS",
    "OUTBOX_SWEEP_SECONDS",
    "OUTBOX_RETENTION_DAYS",
    "OUTBOX_CLAIM_LEASE_SECONDS",
    "OUTBOX_UNAVAILABLE_BACKOFF_SECONDS",
    "OUTBOX_UNAVAILABLE_BACKOFF_MAX_SECONDS",
    "OUTBOX_SWEEP_BUDGET_SECONDS",
    "OUTBOX_PURGE_BATCH_SIZE",
    "OUTBOX_HEALTH_MAX_AGE_SECONDS",
    "IDEMPOTENCY_TTL_SECONDS",
    "EVENTS_MAX_BODY_BYTES",
    "EVENTS_PREFETCH_COUNT",
    "EVENTS_DELIVERY_LIMIT",
    "KAFKA_CONSUMER_MAX_RECORDS",
    "KAFKA_HANDLER_MAX_ATTEMPTS",
    "KAFKA_PROGRESS_LOG_SECONDS",
    "KAFKA_TOPIC_PARTITIONS",
    "KAFKA_REPLICATION_FACTOR",
    "KAFKA_MIN_INSYNC_REPLICAS",
    "CELERY_WORKER_PREFETCH_MULTIPLIER",
    "BOOKING_PREMIUM_MULTIPLIER",
    "BOOKING_MAX_SEATS",
    "BOOKING_MAX_SEATS_PER_USER_PER_DEPARTURE",
    "NOTIFICATION_RETRY_BACKOFF_MAX_SECONDS",
    "NOTIFICATION_SWEEP_AFTER_SECONDS",
    "NOTIFICATION_DISPATCH_CHUNK",
    "WORKER_HEARTBEAT_SECONDS",
    "HEALTH_CHECK_TIMEOUT_SECONDS",
    "CELERY_TASK_SOFT_TIME_LIMIT",
    "CELERY_TASK_TIME_LIMIT",
    "EMAIL_TIMEOUT",
)
_NON_NEGATIVE = ("OUTBOX_WORKER_LOOP_SECONDS", "NOTIFICATION_MAX_RETRIES")


def _error(message: str, *, hint: str, number: int) -> checks.Error:
    return checks.Error(message, hint=hint, id=f"tourapp.E{number:03d}")


def _choices(
    name: str, values: Sequence[str], allowed: Sequence[str], *, number: int, verb: str = "is"
) -> list[checks.CheckMessage]:
    wrong = [value for value in values if value not in allowed]
    if wrong:
        return [
            _error(
                f"{name} {verb} {', '.join(repr(v) for v in wrong)}",
                hint=f"expected one of: {', '.join(allowed)}",
                number=number,
            )
        ]
    return []


def check_outbox_destinations(**kwargs: Any) -> list[checks.CheckMessage]:
    destinations = list(settings.OUTBOX_DESTINATIONS)
    if not destinations:
        return [_error("OUTBOX_DESTINATIONS is empty", hint="expected rabbitmq, kafka or both", number=1)]
    errors = _choices("OUTBOX_DESTINATIONS", destinations, _DESTINATIONS, number=1, verb="contains")
    if len(set(destinations)) != len(destinations):
        errors.append(
            _error(
                f"OUTBOX_DESTINATIONS repeats a destination: {destinations}",
                hint="expected each destination once",
                number=1,
            )
        )
    return errors


def check_handler_routes(**kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for handler, route in settings.EVENT_HANDLER_ROUTES.items():
        errors += _choices(
            f"{handler.upper()}_TRANSPORT (EVENT_HANDLER_ROUTES[{handler!r}])", [route], _ROUTES, number=2
        )
    return errors


def check_logging(**kwargs: Any) -> list[checks.CheckMessage]:
    formats = sorted(settings.LOGGING.get("formatters", {}))
    errors = _choices("LOG_FORMAT", [settings.LOG_FORMAT], formats, number=3)
    levels = [name for name in logging.getLevelNamesMapping() if name not in ("WARN", "FATAL", "NOTSET")]
    errors += _choices("LOG_LEVEL", [str(settings.LOG_LEVEL).upper()], levels, number=4)
    return errors


def check_celery_queue_type(**kwargs: Any) -> list[checks.CheckMessage]:
    return _choices("CELERY_TASK_DEFAULT_QUEUE_TYPE", [settings.CELERY_TASK_DEFAULT_QUEUE_TYPE], _QUEUE_TYPES, number=5)


def check_numbers(**kwargs: Any) -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    for names, low, word in ((_POSITIVE, False, "greater than 0"), (_NON_NEGATIVE, True, "0 or more")):
        for name in names:
            value = getattr(settings, name, None)
            if value is None:  # a setting renamed or removed elsewhere is not this check's business
                continue
            if value < 0 or (value == 0 and not low):
                errors.append(_error(f"{name} is {value}", hint=f"expected a number {word}", number=6))
    delays = list(settings.EVENTS_RETRY_DELAYS)
    if not delays or any(delay <= 0 for delay in delays):
        errors.append(
            _error(
                f"EVENTS_RETRY_DELAYS is {delays}",
                hint="expected a comma-separated list of positive seconds, e.g. 1,5,30",
                number=7,
            )
        )
    if settings.OUTBOX_BACKOFF_MAX_SECONDS < settings.OUTBOX_BACKOFF_BASE_SECONDS:
        errors.append(
            _error(
                f"OUTBOX_BACKOFF_MAX_SECONDS ({settings.OUTBOX_BACKOFF_MAX_SECONDS}) is below "
                f"OUTBOX_BACKOFF_BASE_SECONDS ({settings.OUTBOX_BACKOFF_BASE_SECONDS})",
                hint="expected a cap at least as long as the base delay",
                number=8,
            )
        )
    if settings.KAFKA_MIN_INSYNC_REPLICAS > settings.KAFKA_REPLICATION_FACTOR:
        errors.append(
            _error(
                f"KAFKA_MIN_INSYNC_REPLICAS ({settings.KAFKA_MIN_INSYNC_REPLICAS}) exceeds "
                f"KAFKA_REPLICATION_FACTOR ({settings.KAFKA_REPLICATION_FACTOR})",
                hint="expected at most the replication factor (every acks=all write would fail)",
                number=9,
            )
        )
    return errors


def check_kafka_servers(**kwargs: Any) -> list[checks.CheckMessage]:
    servers = list(settings.KAFKA_BOOTSTRAP_SERVERS)
    wrong = [s for s in servers if not s.rpartition(":")[0] or not s.rpartition(":")[2].isdigit()]
    if not servers or wrong:
        return [
            _error(
                f"KAFKA_BOOTSTRAP_SERVERS is {servers}",
                hint="expected a comma-separated list of host:port",
                number=10,
            )
        ]
    return []


ALL_CHECKS = (
    check_outbox_destinations,
    check_handler_routes,
    check_logging,
    check_celery_queue_type,
    check_numbers,
    check_kafka_servers,
)


def register_all() -> None:
    """Register every check (idempotent: Django's registry is a set)."""
    for check in ALL_CHECKS:
        checks.register(check, "tourapp")
