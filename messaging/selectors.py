"""Reads over the outbox and the dead letters: backlog per destination, dead deliveries, dead letters.

Health checks, metrics, the admin and ``outbox_status`` import ``outbox_backlog_stats``. Every
outbox query here is served by a partial index (``state = 'pending'`` / ``state = 'dead'``), so it
stays cheap however many delivered rows the table holds.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TypedDict

from django.conf import settings
from django.db.models import Count, Min, QuerySet
from django.utils import timezone

from messaging.models import DeadLetter, OutboxDelivery


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


def outbox_dead_deliveries(
    *,
    delivery_ids: Iterable[int] | None = None,
    event_type: str | None = None,
    destination: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> QuerySet[OutboxDelivery]:
    """Dead deliveries matching every given filter (AND); ``since``/``until`` apply to the event's time.

    The same filters as ``messaging.services.outbox_requeue_dead``: ``outbox_requeue --dry-run``
    lists with this what the requeue would touch.
    """
    dead = OutboxDelivery.objects.filter(state=OutboxDelivery.State.DEAD)
    if delivery_ids is not None:
        dead = dead.filter(id__in=list(delivery_ids))
    if event_type:
        dead = dead.filter(event__event_type=event_type)
    if destination:
        dead = dead.filter(destination=destination)
    if since:
        dead = dead.filter(event__created_at__gte=since)
    if until:
        dead = dead.filter(event__created_at__lt=until)
    return dead.order_by("id")


def dead_letters_filter(
    *,
    dead_letter_ids: Iterable[int] | None = None,
    transport: str | None = None,
    handler: str | None = None,
    event_type: str | None = None,
    states: Iterable[str] | None = (DeadLetter.State.DEAD,),
) -> QuerySet[DeadLetter]:
    """Dead letters matching every given filter, oldest first; by default only those still ``dead``."""
    letters = DeadLetter.objects.all()
    if dead_letter_ids is not None:
        letters = letters.filter(pk__in=list(dead_letter_ids))
    if transport:
        letters = letters.filter(transport=transport)
    if handler:
        letters = letters.filter(handler=handler)
    if event_type:
        letters = letters.filter(event_type=event_type)
    if states is not None:
        letters = letters.filter(state__in=list(states))
    return letters.order_by("id")
