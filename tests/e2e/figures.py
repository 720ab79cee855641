"""What the system did, counted from the database and from the brokers' side.

Needs a configured Django (the test process, or ``bench/soak.py`` after ``django.setup()``).

Definitions used by every fault scenario and by the soak:
- *lost*: a booking without its ``tour.booked`` event, an event without a booking, an event not
  delivered to a destination, an event without a sent notification (or one marked sent that no
  backend recorded), or seats missing from the availability read model;
- *duplicates*: a side effect applied twice — a second send of one (booking, channel, event),
  counted from what the email and SMS backends recorded as sent (``tests/support/sends.py``),
  or more seats in the read model than were sold. Broker-level redeliveries are not duplicates
  (at-least-once); they are reported as ``broker_redeliveries``;
- *overbooked*: a departure whose reserved seats exceed its capacity or differ from the sum of
  its confirmed bookings.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tests.support.sends import SendRecord, sends_read

SEND_STATUS = "sent"


@dataclass
class Figures:
    scenario: str
    bookings_made: int = 0
    events: int = 0
    delivered: dict[str, int] = field(default_factory=dict)
    broker_received: dict[str, int] = field(default_factory=dict)
    broker_redeliveries: dict[str, int] = field(default_factory=dict)
    notifications_sent: int = 0
    duplicates: int = 0
    lost: int = 0
    overbooked: int = 0
    drain_seconds: float | None = None
    http_statuses: dict[str, int] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def json_line(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, default=str)


def _notification_model() -> Any:
    from notifications.models import Notification

    return Notification


def send_duplicates(records: Iterable[SendRecord]) -> int:
    """Sends beyond the first of each (booking, channel, event): 0 when each went out once."""
    per_effect = Counter(record.effect for record in records)
    return sum(n - 1 for n in per_effect.values() if n > 1)


def collect_figures(
    scenario: str,
    *,
    departure_ids: list[int],
    sends: Path | None = None,
    amqp: AmqpTap | None = None,
    kafka: KafkaTap | None = None,
    destinations: tuple[str, ...] = ("rabbitmq", "kafka"),
) -> Figures:
    """Count bookings, events, deliveries and side effects for the given departures.

    ``sends`` is the record of the recording backends (``System.sends_path``); without it,
    duplicate sends cannot be seen and ``details["sends_recorded"]`` is False.
    """
    from django.db.models import Sum

    from availability.models import Departure, DepartureAvailability
    from bookings.event_schema import TOUR_BOOKED, TOUR_CANCELLED
    from bookings.models import Booking
    from messaging.models import OutboxDelivery, OutboxEvent

    figures = Figures(scenario)
    details: dict[str, Any] = {}
    bookings = list(Booking.objects.filter(departure_id__in=departure_ids).values("id", "status"))
    booking_ids = {str(b["id"]) for b in bookings}
    figures.bookings_made = len(bookings)

    events = list(
        OutboxEvent.objects.filter(aggregate_id__in=booking_ids, event_type__in=[TOUR_BOOKED, TOUR_CANCELLED]).values(
            "id", "event_id", "event_type", "aggregate_id"
        )
    )
    figures.events = len(events)
    event_ids = {str(e["event_id"]) for e in events}
    booked_per_booking = Counter(e["aggregate_id"] for e in events if e["event_type"] == TOUR_BOOKED)
    details["bookings_without_event"] = len(booking_ids - set(booked_per_booking))
    details["bookings_with_two_booked_events"] = sum(1 for n in booked_per_booking.values() if n > 1)
    details["events_without_booking"] = len(set(booked_per_booking) - booking_ids)

    deliveries = Counter(
        OutboxDelivery.objects.filter(event_id__in=[e["id"] for e in events], state="delivered").values_list(
            "destination", flat=True
        )
    )
    figures.delivered = {d: deliveries.get(d, 0) for d in destinations}
    details["undelivered"] = {d: len(events) - deliveries.get(d, 0) for d in destinations}
    details["dead_deliveries"] = OutboxDelivery.objects.filter(
        event_id__in=[e["id"] for e in events], state="dead"
    ).count()

    Notification = _notification_model()
    sent = list(
        Notification.objects.filter(event_id__in=list(event_ids), status=SEND_STATUS).values_list("event_id", "channel")
    )
    figures.notifications_sent = len(sent)
    details["events_without_sent_notification"] = len(event_ids - {str(e) for e, _ in sent})
    details["sends_recorded"] = sends is not None
    our_sends = [r for r in sends_read(sends) if r.booking_id in booking_ids] if sends is not None else []
    details["sends"] = len(our_sends)
    notification_dups = send_duplicates(our_sends)
    details["duplicate_sends"] = notification_dups
    # a notification marked sent that no backend took is as lost as one never sent
    recorded = {(r.event_id, r.channel) for r in our_sends}
    unrecorded = {(str(e), c) for e, c in sent} - recorded if sends is not None else set()
    details["sent_without_send_record"] = len(unrecorded)

    overbooked = 0
    seats_missing = seats_extra = 0
    for departure in Departure.objects.filter(id__in=departure_ids):
        sold = Booking.objects.filter(departure=departure, status="confirmed").aggregate(s=Sum("seats"))["s"] or 0
        if departure.seats_reserved > departure.capacity or sold != departure.seats_reserved:
            overbooked += 1
        view = DepartureAvailability.objects.filter(departure_id=departure.id).first()
        booked_in_view = view.seats_booked if view else 0
        seats_missing += max(0, sold - booked_in_view)
        seats_extra += max(0, booked_in_view - sold)
    details["availability_seats_missing"] = seats_missing
    details["availability_seats_extra"] = seats_extra

    for name, tap in (("rabbitmq", amqp), ("kafka", kafka)):
        if tap is None:
            continue
        counts = tap.counts()
        ours = {k: v for k, v in counts.items() if k in event_ids}
        figures.broker_received[name] = len(ours)
        figures.broker_redeliveries[name] = sum(v - 1 for v in ours.values())
        details[f"missing_at_{name}"] = len(event_ids - set(ours))

    figures.duplicates = notification_dups + seats_extra + details["bookings_with_two_booked_events"]
    figures.lost = (
        details["bookings_without_event"]
        + details["events_without_booking"]
        + sum(details["undelivered"].values())
        + details["events_without_sent_notification"]
        + details["sent_without_send_record"]
        + seats_missing
        + sum(details.get(f"missing_at_{n}", 0) for n in ("rabbitmq", "kafka"))
    )
    figures.overbooked = overbooked
    figures.details = details
    return figures


def wait_for_drain(
    scenario: str, *, departure_ids: list[int], since: float, timeout: float, sends: Path | None = None, **taps: Any
) -> Figures:
    """Poll ``collect_figures`` until nothing is lost, or the deadline; ``drain_seconds`` from ``since``."""
    deadline = time.monotonic() + timeout
    while True:
        figures = collect_figures(scenario, departure_ids=departure_ids, sends=sends, **taps)
        if figures.lost == 0 and figures.bookings_made > 0:
            figures.drain_seconds = round(time.monotonic() - since, 2)
            return figures
        if time.monotonic() >= deadline:
            return figures
        time.sleep(0.5)


# ----------------------------------------------------------------------------- broker taps
class AmqpTap:
    """A durable queue of our own bound to the session's exchange: counts what RabbitMQ routed.

    Durable so it survives a RabbitMQ application restart; deleted by ``close()``.
    """

    def __init__(self, exchange: str) -> None:
        from kombu import Exchange, Queue

        from messaging.amqp import events_connection

        self.name = f"e2e-tap.{uuid.uuid4().hex[:8]}"
        self.seen: Counter[str] = Counter()
        self.messages: dict[str, tuple[bytes, dict[str, Any], str]] = {}  # eventId -> (body, headers, routing key)
        self.exchange = Exchange(exchange, type="topic", durable=True)
        self.queue = Queue(self.name, self.exchange, routing_key="#", durable=True, auto_delete=False)
        self._connection = events_connection
        with events_connection() as conn:
            self.queue(conn.channel()).declare()

    def counts(self) -> Counter[str]:
        from kombu.exceptions import OperationalError

        try:
            with self._connection() as conn:
                channel = conn.channel()
                bound = self.queue(channel)
                while (message := bound.get(no_ack=False)) is not None:
                    headers = message.headers or {}
                    key = headers.get("eventId") or message.properties.get("message_id") or "?"
                    self.seen[str(key)] += 1
                    self.messages[str(key)] = (message.body, dict(headers), message.delivery_info["routing_key"])
                    message.ack()
        except (OperationalError, OSError):
            pass  # broker down right now: report what was counted so far
        return self.seen

    def close(self) -> None:
        with self._connection() as conn:
            self.queue(conn.channel()).delete()


class KafkaTap:
    """Reads the session's topic from the beginning (no group, no commits): counts per eventId."""

    def __init__(self, topic: str) -> None:
        from django.conf import settings
        from kafka import KafkaConsumer, TopicPartition

        self.seen: Counter[str] = Counter()
        self.records: dict[
            str, tuple[bytes | None, bytes, list[tuple[str, bytes]]]
        ] = {}  # eventId -> key, value, headers
        self.consumer = KafkaConsumer(
            bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, enable_auto_commit=False, group_id=None
        )
        partitions = self.consumer.partitions_for_topic(topic) or {0, 1, 2}
        self.partitions = [TopicPartition(topic, p) for p in sorted(partitions)]
        self.consumer.assign(self.partitions)
        self.consumer.seek_to_beginning(*self.partitions)
        self.next_offset: dict[Any, int] = {}

    def counts(self) -> Counter[str]:
        # Progress is tracked from the records themselves: ``position()`` can block indefinitely here.
        try:
            end = self.consumer.end_offsets(self.partitions)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and any(self.next_offset.get(p, 0) < end[p] for p in self.partitions):
                for partition, records in self.consumer.poll(timeout_ms=500).items():
                    for record in records:
                        headers = {k: v.decode(errors="replace") for k, v in (record.headers or [])}
                        event_id = headers.get("eventId", "?")
                        self.seen[event_id] += 1
                        self.records[event_id] = (record.key, record.value, list(record.headers or []))
                        self.next_offset[partition] = record.offset + 1
        except Exception:  # noqa: S110 - broker down right now: report what was counted so far
            pass
        return self.seen

    def close(self) -> None:
        self.consumer.close()
