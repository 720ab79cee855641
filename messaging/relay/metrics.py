"""What the relay reports: Prometheus counters and one log line per batch, backlog gauges per sweep.

Log lines carry the destination and counts, never payloads; errors are redacted.
"""

from __future__ import annotations

import logging
import time

from messaging.publishers.base import PublishOutcome
from messaging.relay.outcomes import BatchResult, redact_secrets
from messaging.selectors import outbox_backlog_stats
from tourapp import metrics

logger = logging.getLogger(__name__)


def batch_observe(result: BatchResult, started: float, outcome: PublishOutcome) -> None:
    """Count a recorded batch and log it (a warning when the broker was unavailable or refused some)."""
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
            extra={**extra, "error": redact_secrets(outcome.unavailable)},
        )
    elif result.failed:
        first_error = redact_secrets(next(iter(outcome.failed.values())))
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


def outbox_backlog_observe() -> None:
    """Set the backlog gauges from the database (called by the sweeper)."""
    for destination, stats in outbox_backlog_stats().items():
        metrics.OUTBOX_BACKLOG.labels(destination).set(stats["pending"])
        metrics.OUTBOX_OLDEST_AGE.labels(destination).set(stats["oldest_pending_age_seconds"] or 0)
