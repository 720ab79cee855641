"""Reads over the outbox: backlog per destination and the age of the oldest pending delivery.

Health checks, metrics and the admin import ``outbox_backlog_stats``. Every query here is served by
a partial index (``state = 'pending'`` / ``state = 'dead'``), so it stays cheap however many
delivered rows the table holds.
"""

from __future__ import annotations

from typing import TypedDict

from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone

from messaging.models import OutboxDelivery


class DestinationBacklog(TypedDict):
    pending: int
    dead: int
    oldest_pending_age_seconds: float | None


def outbox_backlog_stats() -> dict[str, DestinationBacklog]:
    """Per destination: pending and dead delivery counts, and the age of the oldest pending one.

    Every configured destination is present (zeros when idle). ``oldest_pending_age_seconds`` is
    ``None`` when nothing is pending; it counts from when the event was written, so a broker outage
    shows up as a growing age.
    """
    stats: dict[str, DestinationBacklog] = {
        destination: {"pending": 0, "dead": 0, "oldest_pending_age_seconds": None}
        for destination in settings.OUTBOX_DESTINATIONS
    }
    now = timezone.now()
    pending = (
        OutboxDelivery.objects.filter(state=OutboxDelivery.State.PENDING)
        .values("destination")
        .annotate(count=Count("id"), oldest=Min("created_at"))
        .order_by()
    )
    for row in pending:
        entry = stats.setdefault(row["destination"], {"pending": 0, "dead": 0, "oldest_pending_age_seconds": None})
        entry["pending"] = row["count"]
        entry["oldest_pending_age_seconds"] = max(0.0, (now - row["oldest"]).total_seconds())
    dead = (
        OutboxDelivery.objects.filter(state=OutboxDelivery.State.DEAD)
        .values("destination")
        .annotate(count=Count("id"))
        .order_by()
    )
    for dead_row in dead:
        entry = stats.setdefault(dead_row["destination"], {"pending": 0, "dead": 0, "oldest_pending_age_seconds": None})
        entry["dead"] = dead_row["count"]
    return stats
