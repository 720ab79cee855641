"""Inbox: apply each event at most once per handler, whatever the transport delivers.

Guarantee: effectively once per (handler, dedup key). Transports are at-least-once; duplicates
(redelivery, replay, both transports at once) are removed here:

1. Fast path: Redis keys ``processed:<handler>:<dedup key>`` (TTL ``IDEMPOTENCY_TTL_SECONDS``).
   A key that is present means "done", the event is skipped without touching the database.
2. Authority: ONE transaction inserts ``ProcessedMessage`` rows (``INSERT .. ON CONFLICT DO
   NOTHING RETURNING``: a row that already exists is a duplicate) and runs the handler's
   side-effect writes for the rows that were new. A Redis flush or expiry therefore never
   causes a second side effect: the database decides.
3. After commit the Redis keys are written with ``SET NX EX`` (never extending a TTL).

Why the key is not ``SET NX`` *before* the work, as in the lesson: a crash between claiming the
key and committing would make every redelivery skip an event that was never applied. Writing
it only after commit keeps Redis a pure cache of committed facts. Redis being down only costs
speed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from messaging.envelope import Event
from messaging.queries import INBOX_INSERT_PROCESSED_SQL
from messaging.registry import Handler
from tourapp.correlation import correlation_scope
from tourapp.db import prepared_cursor
from tourapp.metrics import CONSUMER_DUPLICATES, CONSUMER_PROCESSED, END_TO_END_LATENCY

logger = logging.getLogger(__name__)


@dataclass
class InboxResult:
    applied: list[Event] = field(default_factory=list)
    duplicates: list[Event] = field(default_factory=list)


def event_log_scope(event: Event, **context: object) -> AbstractContextManager[str]:
    """Log lines about one event carry its correlation id, event id and aggregate key."""
    # logged as booking_id: the field operators search by (the only aggregate so far)
    return correlation_scope(event.correlation_id, event_id=event.event_id, booking_id=event.aggregate_key, **context)


def idempotency_key(*, handler_name: str, dedup_key: str) -> str:
    """The cache key (before django-redis adds its prefix/version) for one (handler, event)."""
    return f"processed:{handler_name}:{dedup_key}"


def _redis() -> Any:  # a redis.Redis client
    from django_redis import get_redis_connection

    return get_redis_connection("default")


def _redis_keys(handler_name: str, dedup_keys: Iterable[str]) -> list[str]:
    return [cache.make_key(idempotency_key(handler_name=handler_name, dedup_key=key)) for key in dedup_keys]


def _seen_in_cache(handler_name: str, dedup_keys: list[str]) -> set[str]:
    if not dedup_keys:
        return set()
    try:
        values = _redis().mget(_redis_keys(handler_name, dedup_keys))
    except Exception:  # the cache is an optimisation; the DB decides when it is down
        logger.warning("idempotency cache unavailable, falling back to the inbox table", exc_info=True)
        return set()
    return {key for key, value in zip(dedup_keys, values, strict=True) if value is not None}


# SET key 1 EX ttl NX for every key, in one command: one command to encode per batch instead of
# one per key (docs/performance.md). Single Redis (or all keys in one slot): the keys of one
# call are not spread over a cluster.
_SET_ALL_NX = """
for _, key in ipairs(KEYS) do redis.call('SET', key, '1', 'EX', ARGV[1], 'NX') end
return #KEYS
"""
_set_all_nx = None


def _mark_in_cache(handler_name: str, dedup_keys: list[str]) -> None:
    global _set_all_nx
    if not dedup_keys:
        return
    try:
        if _set_all_nx is None:
            _set_all_nx = _redis().register_script(_SET_ALL_NX)
        _set_all_nx(keys=_redis_keys(handler_name, dedup_keys), args=[settings.IDEMPOTENCY_TTL_SECONDS])
    except Exception:  # the cache is an optimisation; the DB decides when it is down
        logger.warning("could not write idempotency keys to the cache", exc_info=True)


def inbox_forget_cache(*, handler_name: str) -> int:
    """Delete every fast-path key of one handler (used by the read-model rebuild)."""
    return cache.delete_pattern(idempotency_key(handler_name=handler_name, dedup_key="*"))  # type: ignore[attr-defined]  # django-redis


def _insert_processed(handler: Handler, events: Sequence[Event], transport: str) -> set[str]:
    """Insert inbox rows; return the dedup keys that were NEW (the others existed already).

    One statement whatever the batch size. The rows travel as one JSON document
    (``jsonb_to_recordset``): one C call to encode, where array parameters are quoted element by
    element in Python.
    """
    rows = [
        {"k": event.dedup_key, "e": str(event.event_id) if event.event_id else None, "c": event.correlation_id}
        for event in events
    ]
    params = {"handler": handler.name, "transport": transport, "now": timezone.now(), "rows": json.dumps(rows)}
    with prepared_cursor() as cursor:
        cursor.execute(INBOX_INSERT_PROCESSED_SQL, params)
        return {row[0] for row in cursor.fetchall()}


def _observe_latency(handler_name: str, events: Sequence[Event]) -> None:
    now = timezone.now()
    for event in events:
        occurred: datetime | None = parse_datetime(event.occurred_at) if event.occurred_at else None
        if occurred is not None and occurred.tzinfo is not None:
            END_TO_END_LATENCY.labels(handler=handler_name).observe(max((now - occurred).total_seconds(), 0.0))


def inbox_process(*, handler: Handler, events: Sequence[Event], transport: str) -> InboxResult:
    """Apply ``events`` with ``handler`` once each; duplicates are skipped and reported.

    Raises whatever the handler raises (the transaction is then rolled back entirely, so the
    caller may retry the batch or split it to find the poison).
    """
    result = InboxResult()
    unique: dict[str, Event] = {}
    for event in events:
        if event.dedup_key in unique:
            result.duplicates.append(event)
        else:
            unique[event.dedup_key] = event
    cached = _seen_in_cache(handler.name, list(unique))
    candidates = [event for key, event in unique.items() if key not in cached]
    result.duplicates += [event for key, event in unique.items() if key in cached]
    if candidates:
        with transaction.atomic():
            new_keys = _insert_processed(handler, candidates, transport)
            result.applied = [event for event in candidates if event.dedup_key in new_keys]
            result.duplicates += [event for event in candidates if event.dedup_key not in new_keys]
            if result.applied:
                handler.handle_batch(result.applied)
            keys = [event.dedup_key for event in candidates]
            transaction.on_commit(lambda: _mark_in_cache(handler.name, keys))
    if result.applied:
        CONSUMER_PROCESSED.labels(handler=handler.name, transport=transport).inc(len(result.applied))
        _observe_latency(handler.name, result.applied)
        _log_applied(handler.name, transport, result.applied)
    if result.duplicates:
        CONSUMER_DUPLICATES.labels(handler=handler.name, transport=transport).inc(len(result.duplicates))
        _log_duplicates(handler.name, transport, result.duplicates)
    return result


def _log_applied(handler_name: str, transport: str, applied: Sequence[Event]) -> None:
    """DEBUG only: at INFO a line per applied event would drown the progress lines under load."""
    if not logger.isEnabledFor(logging.DEBUG):
        return
    extra = {"handler": handler_name, "transport": transport}
    for event in applied:
        with event_log_scope(event):
            logger.debug("applied %s %s", event.event_type, event.dedup_key, extra=extra)


_DUPLICATES_LOGGED_ONE_BY_ONE = 20


def _log_duplicates(handler_name: str, transport: str, duplicates: Sequence[Event]) -> None:
    """A line per duplicate, with its own correlation id (a batch mixes many); a summary for a flood (a replay)."""
    extra = {"handler": handler_name, "transport": transport}
    if len(duplicates) > _DUPLICATES_LOGGED_ONE_BY_ONE:
        logger.info("skipped %d duplicate event(s)", len(duplicates), extra=extra)
        return
    for event in duplicates:
        with event_log_scope(event):
            logger.info("skipped duplicate event %s", event.dedup_key, extra=extra)
