"""``manage.py outbox_requeue``: make dead outbox deliveries pending again (thin shell over the service).

``--dry-run`` lists what would be requeued (count per destination and event type, the first ids)
and changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from messaging.management.progress import Progress
from messaging.selectors import outbox_dead_deliveries
from messaging.services import outbox_requeue_dead

_DRY_RUN_IDS_SHOWN = 20


def _moment(value: str) -> datetime:
    parsed = parse_datetime(value)
    if parsed is None and (day := parse_date(value)) is not None:
        parsed = datetime(day.year, day.month, day.day)
    if parsed is None:
        raise CommandError(f"not an ISO 8601 date or datetime: {value!r}")
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)


class Command(BaseCommand):
    help = "Requeue dead outbox deliveries (by delivery id, event type, destination and/or event time range)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--ids", type=int, nargs="+", help="delivery ids (see the admin)")
        parser.add_argument("--event-type", help="e.g. tour.booked")
        parser.add_argument("--destination", choices=["rabbitmq", "kafka"])
        parser.add_argument("--since", type=_moment, help="events created at or after (ISO 8601)")
        parser.add_argument("--until", type=_moment, help="events created before (ISO 8601)")
        parser.add_argument("--all", action="store_true", help="every dead delivery (required when no filter)")
        parser.add_argument("--dry-run", action="store_true", help="show what would be requeued; change nothing")

    def handle(self, *args: object, **options: Any) -> None:
        filters = {
            "delivery_ids": options["ids"],
            "event_type": options["event_type"],
            "destination": options["destination"],
            "since": options["since"],
            "until": options["until"],
        }
        if not any(value for value in filters.values()) and not options["all"]:
            raise CommandError(
                "give at least one filter (--ids, --event-type, --destination, --since, --until) or --all"
            )
        if options["dry_run"]:
            self._dry_run(filters)
            return
        progress = Progress("requeued", write=self.stdout.write)
        count = outbox_requeue_dead(**filters, progress=progress.update)
        self.stdout.write(self.style.SUCCESS(f"{count} dead deliveries requeued"))

    def _dry_run(self, filters: dict[str, Any]) -> None:
        dead = outbox_dead_deliveries(**filters)
        groups = dead.values_list("destination", "event__event_type").annotate(count=Count("id")).order_by()
        for destination, event_type, count in sorted(groups):
            self.stdout.write(f"{destination:<10} {event_type:<20} {count}")
        ids = list(dead.values_list("id", flat=True)[: _DRY_RUN_IDS_SHOWN + 1])
        if ids:
            more = " ..." if len(ids) > _DRY_RUN_IDS_SHOWN else ""
            self.stdout.write(f"ids: {' '.join(map(str, ids[:_DRY_RUN_IDS_SHOWN]))}{more}")
        total = sum(count for _, _, count in groups)
        self.stdout.write(self.style.WARNING(f"dry run: {total} dead deliveries would be requeued; nothing changed"))
