"""``manage.py outbox_status``: the outbox backlog per destination, as the relay and ``/metrics`` see it.

Pending count, age of the oldest pending delivery and dead count per destination, from
``messaging.selectors.outbox_backlog_stats``. ``--json`` prints one object for scripts. Exits 0
whatever the figures say: it reports, it does not judge (readiness does).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from messaging.selectors import outbox_backlog_stats


class Command(BaseCommand):
    help = "Show the outbox backlog per destination: pending, oldest pending age, dead."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")

    def handle(self, *args: object, **options: Any) -> None:
        stats = outbox_backlog_stats()
        if options["json"]:
            self.stdout.write(json.dumps(stats, sort_keys=True))
            return
        self.stdout.write(f"{'destination':<12} {'pending':>9} {'oldest pending':>15} {'dead':>7}")
        for destination, row in sorted(stats.items()):
            age = row["oldest_pending_age_seconds"]
            shown_age = "-" if age is None else f"{age:.1f} s"
            dead = str(row["dead"])
            self.stdout.write(
                f"{destination:<12} {row['pending']:>9} {shown_age:>15} "
                f"{self.style.ERROR(f'{dead:>7}') if row['dead'] else f'{dead:>7}'}"
            )
        if any(row["dead"] for row in stats.values()):
            self.stdout.write(
                "dead deliveries: `manage.py outbox_requeue --dry-run --all` shows what a requeue would do"
            )
