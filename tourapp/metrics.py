"""Prometheus metrics, defined once. Processes increment them; the web process exposes them.

Multi-process: when ``PROMETHEUS_MULTIPROC_DIR`` is set (``make run`` and docker compose set it),
every process (gunicorn workers, Celery worker, Kafka consumer) writes its samples there and
``/metrics`` aggregates them.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

OUTBOX_PUBLISHED = Counter(
    "tourapp_outbox_delivered_total", "Outbox events confirmed by a destination", ["destination"]
)
OUTBOX_FAILED = Counter("tourapp_outbox_failed_total", "Failed outbox delivery attempts", ["destination"])
OUTBOX_DEAD = Counter("tourapp_outbox_dead_total", "Outbox deliveries that reached max attempts", ["destination"])
OUTBOX_BACKLOG = Gauge(
    "tourapp_outbox_backlog", "Pending outbox deliveries", ["destination"], multiprocess_mode="mostrecent"
)
OUTBOX_OLDEST_AGE = Gauge(
    "tourapp_outbox_oldest_pending_age_seconds",
    "Age of the oldest pending outbox delivery",
    ["destination"],
    multiprocess_mode="mostrecent",
)
CONSUMER_PROCESSED = Counter(
    "tourapp_consumer_processed_total", "Events applied by a handler", ["handler", "transport"]
)
CONSUMER_DUPLICATES = Counter(
    "tourapp_consumer_duplicates_total", "Events skipped as already applied", ["handler", "transport"]
)
CONSUMER_DEAD_LETTERED = Counter(
    "tourapp_consumer_dead_lettered_total", "Messages sent to a DLQ", ["handler", "transport"]
)
KAFKA_CONSUMER_LAG = Gauge(
    "tourapp_kafka_consumer_lag", "Records behind the log end", ["topic", "partition"], multiprocess_mode="mostrecent"
)
END_TO_END_LATENCY = Histogram(
    "tourapp_event_end_to_end_seconds",
    "From event written (outbox) to side effect done",
    ["handler"],
    buckets=LATENCY_BUCKETS,
)


def counters_initialise(*, destinations: Iterable[str], handlers: Iterable[str], transports: Iterable[str]) -> None:
    """Create every labelled counter at 0, so a series exists before its first increment.

    Without this, ``tourapp_outbox_dead_total{destination="kafka"}`` appears only with the first
    dead delivery, and an ``increase()`` alert cannot see that first one (no earlier sample).
    Called from ``OpsConfig.ready`` in every process, with the destinations and handlers it knows.
    """
    for destination in destinations:
        for counter in (OUTBOX_PUBLISHED, OUTBOX_FAILED, OUTBOX_DEAD):
            counter.labels(destination=destination)
    transports = list(transports)
    for handler in handlers:
        for transport in transports:
            for counter in (CONSUMER_PROCESSED, CONSUMER_DUPLICATES, CONSUMER_DEAD_LETTERED):
                counter.labels(handler=handler, transport=transport)
    for transport in transports:  # messages dead-lettered before a handler was known
        CONSUMER_DEAD_LETTERED.labels(handler="-", transport=transport)
