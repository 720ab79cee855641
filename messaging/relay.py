"""Outbox relay: moves pending deliveries to their broker. Claim, release, publish, record.

One batch for one destination is three steps, and no database lock is held across the network:

1. **Claim** (one statement, its own short transaction): ``SELECT ... FOR UPDATE SKIP LOCKED``
   the due *heads* (see order below), ordered by id, and push their ``next_attempt_at`` forward
   by a lease (``OUTBOX_CLAIM_LEASE_SECONDS``), naming the claiming process (``claimed_by``, see
   ``messaging.relay_liveness``). Other relays skip locked rows during the claim and see leased rows
   as not due afterwards, so parallel relays never publish a row twice; a row whose claiming
   process died (its liveness lock is gone) is due again at once.
2. **Publish** outside any transaction (``messaging.publishers``): RabbitMQ with pipelined
   publisher confirms and ``mandatory``; Kafka with ``acks=all`` and the idempotent producer.
3. **Record** (second short transaction, bulk updates): delivered rows become ``delivered``;
   refused rows get ``attempts + 1``, ``last_error`` and an exponential backoff with jitter, and
   become ``dead`` after ``OUTBOX_MAX_ATTEMPTS``; when the broker was unreachable the undecided
   rows are only deferred (no attempt counted) and the destination is paused, doubling up to
   ``OUTBOX_UNAVAILABLE_BACKOFF_MAX_SECONDS``. Every update is fenced on the lease value, so a
   relay whose lease expired cannot overwrite the outcome of the relay that took over.

``outbox_relay_drain`` (what the tasks run) pipelines these steps across batches: claims of the
next batches, the writing of batch *n*, the confirms of the batches before it and the recording of
older ones overlap (see ``_drain_pipelined``).

Guaranteed:

- **At-least-once** per destination. A relay that dies between publish and record (crash,
  SIGKILL, lost connection before the confirm) leaves its rows pending; another relay publishes
  them again at its next claim (a live relay drains on every commit and every
  ``OUTBOX_WORKER_LOOP_SECONDS``), or when the lease expires if the death went unnoticed.
  Consumers deduplicate by event id (the inbox).
- **Per-aggregate order per destination**: a delivery is claimed only when no earlier delivery
  (lower id) of the same ``aggregate_key`` for the same destination is ``pending`` or ``dead``.
  So event *n+1* of a booking is published only after event *n* was confirmed by that broker,
  whatever the retries, backoffs and number of parallel relays. Order is by outbox id, i.e. by
  insertion; two transactions writing events for one aggregate are serialised by the domain's
  row lock, so insertion order is commit order.
- **A dead delivery stops its aggregate** on that destination (order over liveness): later
  events of that booking wait, visible in the backlog and the admin, until the dead row is
  requeued (``outbox_requeue``) and delivered. Other aggregates and the other destination are
  not affected.
- **Nothing expires**: pending and dead rows are never deleted; purge removes only events whose
  every delivery is ``delivered``.
- **Destinations are independent**: each has its own rows, claims, pause and publisher.

Not guaranteed:

- Exactly-once on the wire (duplicates happen after crashes or lost confirms; the inbox removes them).
- Order across aggregates, or across destinations (Kafka may get an event before RabbitMQ).
- Order when a lease expires while its relay is still publishing (lease shorter than a publish):
  keep the lease well above the publishers' timeouts (15-20 s).
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import cycle
from typing import Any, NamedTuple

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from messaging.models import OutboxDelivery
from messaging.publishers import OutboundMessage, Publisher, PublishOutcome, publisher_for
from messaging.relay_liveness import LIVE_RELAY_TOKENS_SQL, relay_token
from tourapp import metrics

logger = logging.getLogger(__name__)

LAST_ERROR_MAX_CHARS = 1000
# user:password@ in any URL (amqp://, kafka SASL, http proxies) never reaches a row or a log line.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s:]*:[^/@\s]*@")

PENDING = OutboxDelivery.State.PENDING.value
DELIVERED = OutboxDelivery.State.DELIVERED.value
DEAD = OutboxDelivery.State.DEAD.value

_DELIVERY = OutboxDelivery._meta.db_table
_CLAIMERS = 2  # claims in flight while draining a backlog (see _drain_pipelined)
# Batches on the wire awaiting their outcome besides the newest. RabbitMQ confirms persistent
# messages once they reach the disk, so more messages in flight keep its writes batched
# (measured in docs/performance.md).
_IN_FLIGHT = 4
_RECORDS_QUEUED = 4  # published batches waiting for the recorder thread before the publisher waits for it
_EVENT = OutboxDelivery._meta.get_field("event").related_model._meta.db_table

# The one locking query of the relay. Heads only: no earlier pending or dead row of the same
# aggregate for this destination (each NOT EXISTS is served by its partial index). The candidates
# are read from the first pending id on (found through the pending partial index, so delivered rows
# waiting for the purge are never scanned whatever plan is chosen), and the lease update and
# the event fetch go through primary keys (= ANY(ARRAY(...))), so a claim costs O(batch), not
# O(table), however many delivered rows wait for the purge.
_CLAIM_SQL = f"""
WITH claimed AS (
    SELECT d.id FROM {_DELIVERY} d
    WHERE d.destination = %(destination)s
      AND d.state = '{PENDING}'
      AND d.id >= (SELECT min(m.id) FROM {_DELIVERY} m WHERE m.destination = %(destination)s AND m.state = '{PENDING}')
      AND (d.next_attempt_at IS NULL OR d.next_attempt_at <= %(now)s
           -- leased by a relay that died (its liveness lock is gone): due now, not after the lease
           OR (d.claimed_by IS NOT NULL AND d.claimed_by NOT IN ({LIVE_RELAY_TOKENS_SQL})))
      AND NOT EXISTS (
          SELECT 1 FROM {_DELIVERY} p
          WHERE p.destination = d.destination AND p.aggregate_key = d.aggregate_key
            AND p.state = '{PENDING}' AND p.id < d.id)
      AND NOT EXISTS (
          SELECT 1 FROM {_DELIVERY} x
          WHERE x.destination = d.destination AND x.aggregate_key = d.aggregate_key
            AND x.state = '{DEAD}' AND x.id < d.id)
    ORDER BY d.destination, d.id
    LIMIT %(limit)s
    FOR UPDATE OF d SKIP LOCKED
), leased AS (
    UPDATE {_DELIVERY} d SET next_attempt_at = %(lease)s, claimed_by = %(token)s
    WHERE d.id = ANY(ARRAY(SELECT id FROM claimed))
    RETURNING d.id, d.attempts, d.event_id
)
SELECT leased.id, leased.attempts, e.event_id::text, e.event_type, e.routing_key, e.message_key,
       -- headers as JSON text, decoded by the relay: cheaper for the database, which shares the
       -- machine with the relay, than unpacking them in SQL (docs/performance.md)
       e.payload::text, e.correlation_id, e.headers::text
FROM leased JOIN {_EVENT} e ON e.id = leased.event_id
WHERE e.id = ANY(ARRAY(SELECT event_id FROM leased))
"""  # noqa: S608 - table names and state constants come from the model, values are parameters

_RECORD_DELIVERED_SQL = f"""
UPDATE {_DELIVERY} SET state = '{DELIVERED}', delivered_at = %(now)s, next_attempt_at = NULL,
                       attempts = attempts + 1, claimed_by = NULL
WHERE id = ANY(%(ids)s) AND state = '{PENDING}' AND next_attempt_at = %(lease)s
"""  # noqa: S608 - see _CLAIM_SQL

_RECORD_FAILED_SQL = f"""
UPDATE {_DELIVERY} d SET attempts = v.attempts, state = v.state, next_attempt_at = v.next_at, last_error = v.error,
                         claimed_by = NULL
FROM unnest(%(ids)s::bigint[], %(attempts)s::int[], %(states)s::text[], %(next_ats)s::timestamptz[],
            %(errors)s::text[]) AS v(id, attempts, state, next_at, error)
WHERE d.id = v.id AND d.state = '{PENDING}' AND d.next_attempt_at = %(lease)s
"""  # noqa: S608 - see _CLAIM_SQL

_RECORD_DEFERRED_SQL = f"""
UPDATE {_DELIVERY} SET next_attempt_at = %(next_at)s, last_error = %(error)s, claimed_by = NULL
WHERE id = ANY(%(ids)s) AND state = '{PENDING}' AND next_attempt_at = %(lease)s
"""  # noqa: S608 - see _CLAIM_SQL


class ClaimedDelivery(NamedTuple):  # one per row claimed: cheaper to build than a frozen dataclass
    message: OutboundMessage
    attempts: int


@dataclass(slots=True)
class BatchResult:
    destination: str
    claimed: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    deferred: int = 0
    unavailable: bool = False


@dataclass(slots=True)
class DrainResult:
    destination: str
    batches: int = 0
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    deferred: int = 0
    paused: bool = False
    seconds: float = 0.0


# -- publishers: one per destination per process (a forked worker builds its own) -----------
_publishers: dict[str, tuple[int, Publisher]] = {}


def _publisher(destination: str) -> Publisher:
    pid = os.getpid()
    cached = _publishers.get(destination)
    if cached is None or cached[0] != pid:
        cached = (pid, publisher_for(destination))
        _publishers[destination] = cached
    return cached[1]


def outbox_publishers_close() -> None:
    """Close this process's publisher connections (worker shutdown, tests, benchmarks)."""
    for pid, publisher in list(_publishers.values()):
        if pid == os.getpid():
            publisher.close()
    _publishers.clear()


# -- claim / record ---------------------------------------------------------------------------
def _relax_durability() -> None:
    """For the pipelined drain's own connection (closed when the drain ends): commits do not wait
    for the WAL flush. If the database crashes and forgets a claim, the row is simply due again; if
    it forgets a "delivered", the row is published again. Both are the at-least-once the relay
    already promises, and each batch saves two fsyncs."""
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")


def _claim(*, destination: str, limit: int, now: datetime, lease: datetime) -> list[ClaimedDelivery]:
    # One statement, so one round trip and atomic by itself: no explicit transaction needed.
    with connection.cursor() as cursor:
        params: dict[str, Any] = {
            "destination": destination,
            "now": now,
            "lease": lease,
            "limit": limit,
            "token": relay_token(),
        }
        cursor.execute(_CLAIM_SQL, params)
        rows = cursor.fetchall()
    claimed = [
        ClaimedDelivery(
            message=OutboundMessage(
                delivery_id=row[0],
                event_id=row[2],
                event_type=row[3],
                routing_key=row[4],
                message_key=row[5],
                body=row[6].encode(),
                headers=json.loads(row[8]),
                correlation_id=row[7],
            ),
            attempts=row[1],
        )
        for row in rows
    ]
    claimed.sort(key=lambda c: c.message.delivery_id)
    return claimed


def outbox_backoff_delay(*, attempts: int) -> float:
    """Seconds before retry number ``attempts + 1``: base * 2^attempts, capped, +-20 % jitter."""
    base = settings.OUTBOX_BACKOFF_BASE_SECONDS
    capped = min(settings.OUTBOX_BACKOFF_MAX_SECONDS, base * (2 ** min(attempts, 32)))
    return capped * random.uniform(0.8, 1.2)


def _redact_secrets(text: str) -> str:
    return _URL_CREDENTIALS.sub(r"\g<scheme>***:***@", text)


def _bounded_error(text: str) -> str:
    text = _redact_secrets(text)
    return text if len(text) <= LAST_ERROR_MAX_CHARS else text[: LAST_ERROR_MAX_CHARS - 1] + "…"


def _record(
    *,
    claimed: list[ClaimedDelivery],
    outcome: PublishOutcome,
    lease: datetime,
    pause_seconds: float,
    result: BatchResult,
) -> None:
    now = timezone.now()
    max_attempts = settings.OUTBOX_MAX_ATTEMPTS
    delivered_ids = set(outcome.delivered)
    failed = {c.message.delivery_id: c for c in claimed if c.message.delivery_id in outcome.failed}
    deferred_ids = [
        c.message.delivery_id
        for c in claimed
        if c.message.delivery_id not in delivered_ids and c.message.delivery_id not in failed
    ]
    ids, attempts, states, next_ats, errors = [], [], [], [], []
    for delivery_id, c in failed.items():
        tries = c.attempts + 1
        dead = tries >= max_attempts
        ids.append(delivery_id)
        attempts.append(tries)
        states.append(DEAD if dead else PENDING)
        next_ats.append(None if dead else now + timedelta(seconds=outbox_backoff_delay(attempts=tries)))
        errors.append(_bounded_error(outcome.failed[delivery_id]))
        result.dead += dead
    statements: list[tuple[str, dict[str, Any]]] = []
    if delivered_ids:
        statements.append((_RECORD_DELIVERED_SQL, {"ids": sorted(delivered_ids), "now": now, "lease": lease}))
    if ids:
        failed_params = {"ids": ids, "attempts": attempts, "states": states, "next_ats": next_ats, "errors": errors}
        statements.append((_RECORD_FAILED_SQL, {**failed_params, "lease": lease}))
    if deferred_ids:
        reason = outcome.unavailable or "undecided: no confirm from the broker"
        next_at = now + timedelta(seconds=pause_seconds * random.uniform(1.0, 1.3))
        statements.append(
            (
                _RECORD_DEFERRED_SQL,
                {"ids": deferred_ids, "next_at": next_at, "error": _bounded_error(reason), "lease": lease},
            )
        )
    # The usual batch (all delivered) is one statement, one round trip; mixed outcomes share a transaction.
    with transaction.atomic() if len(statements) > 1 else nullcontext(), connection.cursor() as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)
    result.delivered = len(delivered_ids)
    result.failed = len(failed)
    result.deferred = len(deferred_ids)


# -- destination pause (shared by all relays through the cache; Redis down = not shared) -----
def _pause_key(destination: str) -> str:
    return f"outbox:paused:{destination}"


def _streak_key(destination: str) -> str:
    return f"outbox:unavailable-streak:{destination}"


def outbox_destination_is_paused(*, destination: str) -> bool:
    try:
        return bool(cache.get(_pause_key(destination)))
    except Exception:  # broad on purpose: the cache is an optimisation; without it every relay just tries
        return False


# Destinations this process saw unavailable: only they need the shared pause cleared on success,
# which keeps a cache round trip off every healthy batch.
_seen_unavailable: set[str] = set()


def _pause_destination(destination: str) -> float:
    base = settings.OUTBOX_UNAVAILABLE_BACKOFF_SECONDS
    _seen_unavailable.add(destination)
    try:
        streak = int(cache.get(_streak_key(destination)) or 0)
        seconds = min(settings.OUTBOX_UNAVAILABLE_BACKOFF_MAX_SECONDS, base * 2**streak)
        cache.set(_streak_key(destination), streak + 1, timeout=3600)
        cache.set(_pause_key(destination), 1, timeout=max(1, round(seconds)))
    except Exception:  # broad on purpose: see outbox_destination_is_paused
        seconds = base
    return seconds


def outbox_destination_resume(*, destination: str) -> None:
    """Forget a destination's pause and outage streak (it answered again, or an operator says so)."""
    _seen_unavailable.discard(destination)
    try:
        cache.delete_many([_pause_key(destination), _streak_key(destination)])
    except Exception:  # broad on purpose: see outbox_destination_is_paused
        logger.debug("outbox: cache unavailable while resuming %s", destination, exc_info=True)


# -- the relay ---------------------------------------------------------------------------------
@dataclass(slots=True)
class _Claim:
    destination: str
    claimed: list[ClaimedDelivery]
    lease: datetime
    started: float


def _claim_batch(*, destination: str, batch_size: int | None) -> _Claim:
    started = time.monotonic()
    now = timezone.now()
    lease = now + timedelta(seconds=settings.OUTBOX_CLAIM_LEASE_SECONDS)
    claimed = _claim(destination=destination, limit=batch_size or settings.OUTBOX_BATCH_SIZE, now=now, lease=lease)
    return _Claim(destination=destination, claimed=claimed, lease=lease, started=started)


def _publisher_bug(claim: _Claim, exc: Exception) -> PublishOutcome:
    # An unexpected publisher error must count attempts (and end in dead), not loop forever.
    logger.exception("outbox: publisher raised", extra={"destination": claim.destination})
    return PublishOutcome(failed={c.message.delivery_id: f"{type(exc).__name__}: {exc}" for c in claim.claimed})


def _begin(claim: _Claim, publisher: Publisher) -> object:
    try:
        return publisher.begin([c.message for c in claim.claimed])
    except Exception as exc:  # broad on purpose: see _publisher_bug
        return _publisher_bug(claim, exc)


def _complete(claim: _Claim, handle: object, publisher: Publisher) -> PublishOutcome:
    if isinstance(handle, PublishOutcome) and handle.failed and len(handle.failed) == len(claim.claimed):
        return handle  # _begin already turned a publisher bug into failures
    try:
        return publisher.complete(handle)
    except Exception as exc:  # broad on purpose: see _publisher_bug
        return _publisher_bug(claim, exc)


def _publish(claim: _Claim, publisher: Publisher) -> PublishOutcome:
    return _complete(claim, _begin(claim, publisher), publisher)


def _finish(claim: _Claim, outcome: PublishOutcome, *, released: bool = False) -> BatchResult:
    """Record a published (or ``released``, never sent) batch: pause/resume the destination, update rows, log."""
    result = BatchResult(destination=claim.destination, claimed=len(claim.claimed))
    pause_seconds = settings.OUTBOX_UNAVAILABLE_BACKOFF_SECONDS
    if released:
        result.unavailable = True
    elif outcome.unavailable:
        result.unavailable = True
        pause_seconds = _pause_destination(claim.destination)
    elif outcome.delivered and claim.destination in _seen_unavailable:
        outbox_destination_resume(destination=claim.destination)
    _record(claimed=claim.claimed, outcome=outcome, lease=claim.lease, pause_seconds=pause_seconds, result=result)
    _observe(result, claim.started, outcome)
    return result


def outbox_relay_batch(
    *, destination: str, batch_size: int | None = None, publisher: Publisher | None = None
) -> BatchResult:
    """Claim, publish and record one batch for one destination. Safe to run in any number of processes."""
    claim = _claim_batch(destination=destination, batch_size=batch_size)
    if not claim.claimed:
        return BatchResult(destination=destination)
    return _finish(claim, _publish(claim, publisher or _publisher(destination)))


def _observe(result: BatchResult, started: float, outcome: PublishOutcome) -> None:
    duration_ms = round((time.monotonic() - started) * 1000, 1)
    destination = result.destination
    if result.delivered:
        metrics.OUTBOX_PUBLISHED.labels(destination).inc(result.delivered)
    if result.failed or result.deferred:
        metrics.OUTBOX_FAILED.labels(destination).inc(result.failed + result.deferred)
    if result.dead:
        metrics.OUTBOX_DEAD.labels(destination).inc(result.dead)
    extra = {
        "destination": destination,
        "batch_size": result.claimed,
        "delivered": result.delivered,
        "failed": result.failed,
        "dead": result.dead,
        "deferred": result.deferred,
        "duration_ms": duration_ms,
    }
    if outcome.unavailable:
        logger.warning(
            "outbox batch: %s unavailable, %d deferred",
            destination,
            result.deferred,
            extra={**extra, "error": _redact_secrets(outcome.unavailable)},
        )
    elif result.failed:
        first_error = _redact_secrets(next(iter(outcome.failed.values())))
        logger.warning(
            "outbox batch: %s %d delivered, %d failed (%d dead)",
            destination,
            result.delivered,
            result.failed,
            result.dead,
            extra={**extra, "error": first_error},
        )
    else:
        logger.info("outbox batch: %s %d delivered in %.1f ms", destination, result.delivered, duration_ms, extra=extra)


def outbox_relay_drain(
    *,
    destination: str,
    time_budget_seconds: float | None = None,
    batch_size: int | None = None,
    publisher: Publisher | None = None,
) -> DrainResult:
    """Run batches for one destination until nothing is due, the destination is unavailable, or the budget is spent.

    Outside a transaction, once a batch comes back full (a backlog), the batches are pipelined:
    helper threads with their own database connections claim the next batches and record the
    published ones while batch *n* is on the wire. Order is
    unaffected: rows of batch *n* stay ``pending`` (leased) until recorded, so the claim of *n+1*
    cannot take a later event of the same aggregate. Inside a transaction (tests with a rolled
    back database) everything runs sequentially on the caller's connection.
    """
    started = time.monotonic()
    budget = settings.OUTBOX_SWEEP_BUDGET_SECONDS if time_budget_seconds is None else time_budget_seconds
    drain = DrainResult(destination=destination)
    if outbox_destination_is_paused(destination=destination):
        drain.paused = True
        return drain
    publisher = publisher or _publisher(destination)
    deadline = started + budget
    if connection.in_atomic_block:
        _drain_sequential(drain, publisher, batch_size, deadline=deadline)
    # The usual kick (a handful of rows) stays on this connection; a full batch means a backlog.
    elif _drain_sequential(drain, publisher, batch_size, deadline=deadline, until_full=True):
        _drain_pipelined(drain, publisher, batch_size, deadline=deadline)
    drain.seconds = time.monotonic() - started
    return drain


def _add(drain: DrainResult, batch: BatchResult) -> None:
    drain.batches += 1
    drain.delivered += batch.delivered
    drain.failed += batch.failed
    drain.dead += batch.dead
    drain.deferred += batch.deferred
    drain.paused = drain.paused or batch.unavailable


def _drain_sequential(
    drain: DrainResult, publisher: Publisher, batch_size: int | None, *, deadline: float, until_full: bool = False
) -> bool:
    """Batches one after the other; with ``until_full``, returns True as soon as a batch came back full."""
    size = batch_size or settings.OUTBOX_BATCH_SIZE
    while True:
        batch = outbox_relay_batch(destination=drain.destination, batch_size=batch_size, publisher=publisher)
        if batch.claimed == 0:
            return False
        _add(drain, batch)
        if batch.unavailable or time.monotonic() >= deadline:
            return False
        if until_full and batch.claimed >= size:
            return True


def _close_thread_connection() -> None:
    connection.close()  # resolved in the calling thread: the helper thread's own connection


def _drain_pipelined(drain: DrainResult, publisher: Publisher, batch_size: int | None, *, deadline: float) -> None:
    """Batches in flight on several threads, each with its own database connection where it needs one:
    claim batches n+1 and n+2 | hand batch n to the broker client | await the outcome of batch
    n - _IN_FLIGHT (caller) | record the batches before it, queued on the recorder thread.

    Two claimers run side by side because a claim (a locking query and a lease update) takes about
    as long as the broker client needs to send a batch. They are safe together for the same reason
    parallel relays are: a delivery is claimable only once every earlier delivery of its aggregate
    is no longer pending, so the batches may come back, and be published, in any order. Claims and
    records touch disjoint rows (records are fenced on their lease)."""
    destination = drain.destination

    def claim_next() -> _Claim:
        return _claim_batch(destination=destination, batch_size=batch_size)

    with ExitStack() as threads:
        claimers = [
            threads.enter_context(ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"outbox-claim-{destination}"))
            for _ in range(_CLAIMERS)
        ]
        records = threads.enter_context(
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"outbox-record-{destination}")
        )
        helpers = [*claimers, records]
        recording: deque[Future[BatchResult]] = deque()  # queued on the recorder thread, oldest first

        def record(claim: _Claim, outcome: PublishOutcome, *, released: bool = False) -> None:
            # Queued, not awaited: the publishing thread goes on with the next batch while the
            # recorder writes this one.
            recording.append(records.submit(_finish, claim, outcome, released=released))
            while recording and (recording[0].done() or len(recording) > _RECORDS_QUEUED):
                _add(drain, recording.popleft().result())

        try:
            for ready in [helper.submit(_relax_durability) for helper in helpers]:  # connect side by side
                ready.result()
            # Claim k runs on claimers[k % n]: when claim k is taken, its claimer is free for claim k + n.
            claiming: deque[Future[_Claim]] = deque(claimer.submit(claim_next) for claimer in claimers)
            turn = cycle(claimers)
            exhausted = False
            inflight: deque[tuple[_Claim, object]] = deque()  # begun, not yet completed, oldest first
            broken = False
            while claiming and not broken:
                claim = claiming.popleft().result()
                claimer = next(turn)
                if not claim.claimed:
                    exhausted = True  # claims already under way still run and their rows are published
                    continue
                if not exhausted and time.monotonic() < deadline:
                    claiming.append(claimer.submit(claim_next))
                inflight.append((claim, _begin(claim, publisher)))
                while len(inflight) > _IN_FLIGHT:
                    oldest = inflight.popleft()
                    outcome = _complete(*oldest, publisher)
                    record(oldest[0], outcome)
                    if outcome.unavailable:
                        broken = True  # the broker is gone: later batches come back undecided
                        break
            while inflight:
                oldest = inflight.popleft()
                record(oldest[0], _complete(*oldest, publisher))
            released = PublishOutcome(unavailable="destination unavailable: batch released unsent")
            for prefetched in claiming:
                claim = prefetched.result()
                if claim.claimed:
                    record(claim, released, released=True)
            while recording:
                _add(drain, recording.popleft().result())
        finally:
            for helper in helpers:
                helper.submit(_close_thread_connection).result()


def outbox_backlog_observe() -> None:
    """Set the backlog gauges from the database (called by the sweeper)."""
    from messaging.selectors import outbox_backlog_stats

    for destination, stats in outbox_backlog_stats().items():
        metrics.OUTBOX_BACKLOG.labels(destination).set(stats["pending"])
        metrics.OUTBOX_OLDEST_AGE.labels(destination).set(stats["oldest_pending_age_seconds"] or 0)
