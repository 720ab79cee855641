"""Reads for health, metrics and the operations dashboard.

The outbox figures are the relay's own (``messaging.selectors.outbox_backlog_stats``), so the
dashboard, ``/metrics`` and readiness agree with what the relay calls "pending". Domain apps are
imported inside the functions: ``tourapp.ops`` loads before them and must not depend on their
import order.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db.models import Count


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


def ops_dashboard() -> dict[str, Any]:
    dead_letters = dead_letter_counts()
    return {
        "backlog": outbox_backlog(),
        "max_age_seconds": settings.OUTBOX_HEALTH_MAX_AGE_SECONDS,
        "dead_letters": dead_letters,
        "dead_letters_open": sum(row["count"] for row in dead_letters if row["state"] == "dead"),
        "notifications_failed": notifications_failed_count(),
    }
