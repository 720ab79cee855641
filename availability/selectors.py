"""Reads of tours and departures, and THE locking queryset for departures.

Lock order (every writer follows it, so two transactions never wait on each other in a cycle):

1. departure rows, via ``departure_lock_for_update``, ordered by primary key (a new booking
   locks its one departure with ``bookings.selectors.departure_lock_for_booking``, the same
   ``FOR UPDATE OF`` the departure row, hand-written for speed);
2. then booking rows (``bookings.selectors.booking_lock_for_update``).

No other code locks ``Departure`` rows.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from availability.models import Departure, Tour
from tourapp.exceptions import NotFound


def departure_lock_for_update(*, departure_ids: Iterable[int]) -> QuerySet[Departure]:
    """Departures locked ``FOR UPDATE`` (only the departure rows, not their tour), ordered by pk.

    Must be evaluated inside ``transaction.atomic()``; the tour is joined for the event payload.
    """
    return (
        Departure.objects.select_for_update(of=("self",))
        .select_related("tour")
        .filter(pk__in=list(departure_ids))
        .order_by("pk")
    )


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
