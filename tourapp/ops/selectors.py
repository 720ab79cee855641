"""Reads for health, metrics and the operations dashboard.

The outbox figures come from ``messaging.selectors.outbox_backlog_stats()`` (the relay's own
definition of "pending"); notifications are optional (imported lazily) so this module works
whatever apps are installed.
"""

from __future__ import annotations

from typing import Any, TypedDict

from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone


class BacklogStats(TypedDict):
    pending: int
    dead: int
    oldest_pending_age_seconds: float | None


def outbox_backlog() -> dict[str, BacklogStats]:
    """Per configured destination: pending and dead deliveries, age of the oldest pending one."""
    try:
        from messaging.selectors import outbox_backlog_stats
    except ImportError:  # the relay's selector is not there yet: count the rows ourselves
        outbox_backlog_stats = _outbox_backlog_stats_fallback

    stats = outbox_backlog_stats()
    empty: BacklogStats = {"pending": 0, "dead": 0, "oldest_pending_age_seconds": None}
    destinations = list(dict.fromkeys([*settings.OUTBOX_DESTINATIONS, *stats]))
    return {dest: {**empty, **stats.get(dest, {})} for dest in destinations}  # type: ignore[typeddict-item] - merged from the relay's dict


def _outbox_backlog_stats_fallback() -> dict[str, dict[str, Any]]:
    from messaging.models import OutboxDelivery

    now = timezone.now()
    stats: dict[str, dict[str, Any]] = {}
    rows = (
        OutboxDelivery.objects.exclude(state=OutboxDelivery.State.DELIVERED)
        .values("destination", "state")
        .annotate(count=Count("id"), oldest=Min("created_at"))
    )
    for row in rows:
        dest = stats.setdefault(row["destination"], {"pending": 0, "dead": 0, "oldest_pending_age_seconds": None})
        dest[row["state"]] = row["count"]
        if row["state"] == OutboxDelivery.State.PENDING:
            dest["oldest_pending_age_seconds"] = (now - row["oldest"]).total_seconds()
    return stats


def dead_letter_counts() -> list[dict[str, Any]]:
    """Dead letters by transport and state, e.g. ``{"transport": "kafka", "state": "dead", "count": 2}``."""
    from messaging.models import DeadLetter

    rows = DeadLetter.objects.values("transport", "state").annotate(count=Count("id")).order_by("transport", "state")
    return list(rows)


def notifications_failed_count() -> int | None:
    """Failed notifications, or None when the notifications app has no such model (yet)."""
    try:
        from notifications.models import Notification
    except ImportError:
        return None
    field = next((f for f in ("status", "state") if hasattr(Notification, f)), None)
    if field is None:
        return None
    choices = getattr(Notification, field.capitalize(), None)
    return Notification.objects.filter(**{field: getattr(choices, "FAILED", "failed")}).count()


def ops_dashboard() -> dict[str, Any]:
    dead_letters = dead_letter_counts()
    return {
        "backlog": outbox_backlog(),
        "max_age_seconds": settings.OUTBOX_HEALTH_MAX_AGE_SECONDS,
        "dead_letters": dead_letters,
        "dead_letters_open": sum(r["count"] for r in dead_letters if r["state"] == "dead"),
        "notifications_failed": notifications_failed_count(),
    }
