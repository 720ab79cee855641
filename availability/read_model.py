"""The availability read model: seats booked per departure, built only from events.

``tour.booked`` adds the booking's seats, ``tour.cancelled`` removes them (the event types are
bookings', which names them in :func:`seat_events_register`). A departure's row is
created the first time one of its events is applied, with ``capacity`` (and ``tour_id``) read
from the ``availability.Departure`` row at that moment; capacity changes made later are not
followed until the next rebuild. Idempotency comes from the inbox (``messaging.inbox``): these
functions run inside its transaction, once per event.

Rebuild: ``availability_read_model_reset`` empties the model AND the availability handler's dedup
records (inbox rows and Redis keys) in one go, then ``manage.py availability_rebuild`` replays the
Kafka topic from the beginning into a fresh consumer group driving only this handler.

Safe during live traffic: a live batch that read a departure's row before the reset deleted it
updates no row. Committing then would keep its inbox rows (inserted after the reset looked) while
its seats went nowhere, and the replay would skip those events. So an update that matches no row
raises :class:`ReadModelRowVanished`: the whole inbox transaction rolls back and the transport
retries the events (Kafka: record by record; RabbitMQ: its retry ladder), which then recreate the
row, or find that the replay already applied them. ``updated_at`` is set by every update
(``auto_now`` is not applied by ``QuerySet.update``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Protocol

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from availability.models import Departure, DepartureAvailability
from messaging.envelope import Event
from messaging.inbox import inbox_forget_cache
from messaging.models import ProcessedMessage

HANDLER_NAME = "availability"


class SeatsPayload(Protocol):
    """What the read model reads from an event's payload (a booking event's, structurally)."""

    @property
    def departure_id(self) -> int | None: ...

    @property
    def seats(self) -> int | None: ...


# Event type -> +1 (adds the event's seats) or -1 (removes them); see seat_events_register.
_seat_signs: dict[str, int] = {}


def seat_events_register(*, added_by: Iterable[str], removed_by: Iterable[str]) -> list[str]:
    """Name the event types that add / remove seats; returns them all (the handler's event types).

    availability sits below bookings (bookings reserves seats through it) and cannot import its
    events, so bookings names them from its ``AppConfig.ready``.
    """
    _seat_signs.update({event_type: 1 for event_type in added_by})
    _seat_signs.update({event_type: -1 for event_type in removed_by})
    return sorted(_seat_signs)


class UnknownDeparture(Exception):
    """An event names a departure this database does not know (it is dead-lettered)."""


class ReadModelRowVanished(Exception):
    """A departure's row was deleted under the batch (a concurrent reset): roll back and retry."""


def departure_availability_apply(*, events: Sequence[Event[SeatsPayload]]) -> None:
    """Add / remove seats per departure for ``events`` (inside the caller's transaction).

    Rows are updated in primary-key order, so concurrent consumers never deadlock.
    """
    deltas: dict[int, int] = defaultdict(int)
    for event in events:
        departure_id, seats = event.payload.departure_id, event.payload.seats
        assert departure_id is not None and seats is not None  # required_fields guarantee it
        sign = _seat_signs.get(event.event_type)
        if sign is not None:
            deltas[departure_id] += sign * seats
    if not deltas:
        return
    existing = set(DepartureAvailability.objects.filter(pk__in=deltas).values_list("pk", flat=True))
    missing = set(deltas) - existing
    if missing:
        departures = {d.pk: d for d in Departure.objects.filter(pk__in=missing).only("pk", "tour_id", "capacity")}
        unknown = missing - set(departures)
        if unknown:
            raise UnknownDeparture(f"unknown departure id(s): {sorted(unknown)}")
        DepartureAvailability.objects.bulk_create(
            [
                DepartureAvailability(departure_id=d.pk, tour_id=d.tour_id, capacity=d.capacity)
                for d in departures.values()
            ],
            ignore_conflicts=True,
        )
    now = timezone.now()
    for departure_id in sorted(deltas):
        if deltas[departure_id]:
            updated = DepartureAvailability.objects.filter(pk=departure_id).update(
                seats_booked=F("seats_booked") + deltas[departure_id], updated_at=now
            )
            if updated != 1:
                raise ReadModelRowVanished(
                    f"availability row of departure {departure_id} was deleted during the batch (a rebuild's reset)"
                )


def availability_read_model_reset() -> dict[str, int]:
    """Empty the read model and forget which events the availability handler applied."""
    with transaction.atomic():
        rows, _ = DepartureAvailability.objects.all().delete()
        inbox, _ = ProcessedMessage.objects.filter(handler=HANDLER_NAME).delete()
    keys = inbox_forget_cache(handler_name=HANDLER_NAME)
    return {"read_model_rows": rows, "inbox_rows": inbox, "cache_keys": keys or 0}


def seats_left_by_departure(*, departure_ids: Sequence[int]) -> dict[int, int]:
    """Projected seats left (from events) for the given departures; missing ones are absent."""
    return {
        row.departure_id: row.seats_left
        for row in DepartureAvailability.objects.filter(pk__in=departure_ids).only(
            "departure_id", "capacity", "seats_booked"
        )
    }


def seats_left_by_tours(*, tour_ids: Sequence[int]) -> dict[int, int]:
    """Projected seats left per departure id, for every departure of these tours (one query)."""
    rows = DepartureAvailability.objects.filter(tour_id__in=tour_ids).only("departure_id", "capacity", "seats_booked")
    return {row.departure_id: row.seats_left for row in rows}
