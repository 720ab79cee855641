"""Reads for health, metrics and the operations dashboard.

The outbox figures are the relay's own (``messaging.selectors.outbox_backlog_stats``), so the
dashboard, ``/metrics`` and readiness agree with what the relay calls "pending". ``ops`` sits above
the domain apps and may read them; their models are imported inside the functions, so importing
this module never needs the app registry.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

THROUGHPUT_WINDOW_SECONDS = 60


def outbox_backlog() -> dict[str, Any]:
    """Per destination: ``{"pending", "dead", "oldest_pending_age_seconds"}``."""
    from messaging.selectors import outbox_backlog_stats

    return dict(outbox_backlog_stats())


def dead_letter_counts() -> list[dict[str, Any]]:
    """Dead letters by transport and state, e.g. ``{"transport": "kafka", "state": "dead", "count": 2}``."""
    from messaging.models import DeadLetter

    rows = DeadLetter.objects.values("transport", "state").annotate(count=Count("id")).order_by("transport", "state")
    return [dict(row) for row in rows]


def notifications_failed_count() -> int:
    from notifications.models import Notification

    return Notification.objects.filter(status=Notification.Status.FAILED).count()


def outbox_throughput(*, window_seconds: int = THROUGHPUT_WINDOW_SECONDS) -> dict[str, dict[str, int]]:
    """Per destination, over the last ``window_seconds``: events written and how many are delivered.

    Counted from the events' creation time (``created_at`` is indexed, and each delivery is found
    by its unique (event, destination) index), so it stays cheap on a large outbox.
    """
    from messaging.models import OutboxDelivery

    since = timezone.now() - timedelta(seconds=window_seconds)
    rows = (
        OutboxDelivery.objects.filter(event__created_at__gte=since)
        .values("destination")
        .annotate(written=Count("id"), delivered=Count("id", filter=Q(state=OutboxDelivery.State.DELIVERED)))
        .order_by()
    )
    stats = {destination: {"written": 0, "delivered": 0} for destination in settings.OUTBOX_DESTINATIONS}
    for row in rows:
        stats[row["destination"]] = {"written": row["written"], "delivered": row["delivered"]}
    return stats


def metric_values(*names: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Current samples of the named metric families, from every process in multiprocess mode.

    For the dashboard (delivered totals since start, Kafka lag as the consumer last reported it).
    """
    import prometheus_client
    from prometheus_client import multiprocess

    if settings.PROMETHEUS_MULTIPROC_DIR:
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=settings.PROMETHEUS_MULTIPROC_DIR)
    else:
        registry = prometheus_client.REGISTRY
    wanted = set(names)
    values: dict[str, list[tuple[dict[str, str], float]]] = {name: [] for name in names}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name in wanted:
                values[sample.name].append((dict(sample.labels), sample.value))
    return values


def delivered_totals_and_kafka_lag() -> dict[str, Any]:
    values = metric_values("tourapp_outbox_delivered_total", "tourapp_kafka_consumer_lag")
    delivered: dict[str, float] = {}
    for labels, value in values["tourapp_outbox_delivered_total"]:
        destination = labels.get("destination", "?")
        delivered[destination] = delivered.get(destination, 0) + value
    lag = [
        {"topic": labels.get("topic", "?"), "partition": labels.get("partition", "?"), "lag": int(value)}
        for labels, value in sorted(
            values["tourapp_kafka_consumer_lag"], key=lambda s: (s[0].get("topic", ""), s[0].get("partition", ""))
        )
    ]
    return {"delivered_totals": dict(sorted(delivered.items())), "kafka_lag": lag}


def workers_heartbeat() -> dict[str, Any]:
    """Celery workers with a heartbeat inside the alive window (Redis), or the error reading it."""
    from ops.heartbeat import alive_window_seconds, workers_alive

    try:
        return {"alive": workers_alive(), "window_seconds": alive_window_seconds(), "error": ""}
    except Exception as exc:  # Redis down: the dashboard still renders, naming the problem
        return {"alive": [], "window_seconds": alive_window_seconds(), "error": f"{type(exc).__name__}: {exc}"}


def ops_dashboard() -> dict[str, Any]:
    dead_letters = dead_letter_counts()
    return {
        **delivered_totals_and_kafka_lag(),
        "throughput": outbox_throughput(),
        "throughput_window_seconds": THROUGHPUT_WINDOW_SECONDS,
        "workers": workers_heartbeat(),
        "rabbitmq_management_url": settings.RABBITMQ_MANAGEMENT_URL,
        "flower_url": settings.FLOWER_URL,
        "backlog": outbox_backlog(),
        "max_age_seconds": settings.OUTBOX_HEALTH_MAX_AGE_SECONDS,
        "dead_letters": dead_letters,
        "dead_letters_open": sum(row["count"] for row in dead_letters if row["state"] == "dead"),
        "notifications_failed": notifications_failed_count(),
    }


JOURNEY_STEPS = (
    ("outbox", "outbox row written"),
    ("rabbitmq", "delivered to RabbitMQ"),
    ("email", "email notification sent"),
    ("sms", "SMS notification sent"),
    ("kafka", "delivered to Kafka"),
    ("availability", "availability read model applied"),
)


def booking_journey(*, correlation_id: str) -> dict[str, Any]:
    """When each step of a booking's journey happened, found by its correlation id (None: not yet).

    Keys are those of ``JOURNEY_STEPS``; ``booking_id`` is the booked aggregate (None before the
    outbox row exists). Reads the outbox, the notifications and the inbox: what the processes
    recorded, not what they logged.
    """
    from messaging.models import OutboxDelivery, OutboxEvent, ProcessedMessage
    from notifications.models import Notification

    steps: dict[str, Any] = {key: None for key, _ in JOURNEY_STEPS}
    event = OutboxEvent.objects.filter(correlation_id=correlation_id).order_by("id").first()
    steps["booking_id"] = event.aggregate_id if event else None
    if event is None:
        return steps
    steps["outbox"] = event.created_at
    for destination, delivered_at in OutboxDelivery.objects.filter(
        event=event, state=OutboxDelivery.State.DELIVERED
    ).values_list("destination", "delivered_at"):
        steps[destination] = delivered_at
    for channel, sent_at in Notification.objects.filter(
        correlation_id=correlation_id, status=Notification.Status.SENT
    ).values_list("channel", "sent_at"):
        steps[channel] = sent_at
    applied = (
        ProcessedMessage.objects.filter(correlation_id=correlation_id, handler="availability")
        .order_by("processed_at")
        .values_list("processed_at", flat=True)
        .first()
    )
    steps["availability"] = applied
    return steps
