"""Reads of tours and departures. The departure lock is a write-path query: ``availability.queries.departure_lock``."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from availability.models import Departure, Tour
from tourapp.exceptions import NotFound


def _upcoming_departures() -> Prefetch:
    return Prefetch(
        "departures",
        queryset=Departure.objects.filter(starts_at__gt=timezone.now()).order_by("starts_at", "id"),
    )


def tour_list() -> QuerySet[Tour]:
    """Every tour with its upcoming departures (two queries whatever the number of tours)."""
    return Tour.objects.prefetch_related(_upcoming_departures()).order_by("name", "id")


def tour_get(*, id_or_slug: str) -> Tour:
    """One tour with its upcoming departures, by numeric id or by slug; ``NotFound`` otherwise."""
    tours = tour_list()
    lookup = {"pk": int(id_or_slug)} if id_or_slug.isdigit() else {"slug": id_or_slug}
    try:
        return tours.get(**lookup)
    except Tour.DoesNotExist:
        raise NotFound(f"No tour with id or slug {id_or_slug!r}.") from None
