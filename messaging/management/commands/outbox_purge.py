"""``manage.py outbox_purge``: delete fully delivered outbox events past retention (thin shell over the service)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from messaging.management.progress import Progress
from messaging.services import outbox_purge_delivered


class Command(BaseCommand):
    help = "Delete outbox events whose every delivery is delivered and that are older than the retention."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than-days",
            type=float,
            default=None,
            help="retention in days (default OUTBOX_RETENTION_DAYS)",
        )
        parser.add_argument(
            "--batch-size", type=int, default=None, help="events per delete (default OUTBOX_PURGE_BATCH_SIZE)"
        )

    def handle(self, *args: object, **options: Any) -> None:
        days = options["older_than_days"]
        days = settings.OUTBOX_RETENTION_DAYS if days is None else days
        progress = Progress("purged", write=self.stdout.write)  # a line every few seconds, not per batch
        count = outbox_purge_delivered(
            older_than=timedelta(days=days), batch_size=options["batch_size"], progress=progress.update
        )
        self.stdout.write(self.style.SUCCESS(f"{count} delivered events older than {days:g} days purged"))
