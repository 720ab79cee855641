"""``manage.py dead_letters``: list, re-drive or discard dead letters from a shell (as the admin does).

    dead_letters list [--transport kafka] [--handler notifications] [--state dead redriven]
    dead_letters redrive --ids 3 4 | --all [--dry-run]
    dead_letters discard --ids 3 4 | --all [--dry-run]

Thin shell over ``messaging.dead_letters``: a re-drive publishes the stored body back to the queue
or topic it came from (the inbox makes a duplicate harmless); a discard keeps the row and only
stops showing it as dead. Only letters still ``dead`` are re-driven or discarded.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from messaging.dead_letters import dead_letter_redrive_to_broker, dead_letters_discard
from messaging.management.progress import Progress
from messaging.models import DeadLetter
from messaging.selectors import dead_letters_filter

_LIST_LIMIT = 50


class Command(BaseCommand):
    help = "List, re-drive or discard dead letters (messages a consumer could not handle)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="list dead letters (newest last)")
        listing.add_argument("--state", nargs="+", choices=DeadLetter.State.values, default=[DeadLetter.State.DEAD])
        listing.add_argument("--limit", type=int, default=_LIST_LIMIT, help=f"rows shown (default {_LIST_LIMIT})")
        listing.add_argument("--json", action="store_true", help="one JSON object per line")
        for name, text in (("redrive", "publish back to the source queue/topic"), ("discard", "mark as discarded")):
            action = sub.add_parser(name, help=text)
            action.add_argument("--ids", type=int, nargs="+", help="dead letter ids (see `dead_letters list`)")
            action.add_argument("--all", action="store_true", help="every matching dead letter (when no --ids)")
            action.add_argument("--dry-run", action="store_true", help="show what would be done; change nothing")
        for action in sub.choices.values():
            action.add_argument("--transport", choices=DeadLetter.Transport.values)
            action.add_argument("--handler", help="e.g. notifications")
            action.add_argument("--event-type", help="e.g. tour.booked")

    def handle(self, *args: object, **options: Any) -> None:
        filters = {
            "transport": options["transport"],
            "handler": options["handler"],
            "event_type": options["event_type"],
        }
        if options["action"] == "list":
            self._list(dead_letters_filter(**filters, states=options["state"]), options)
            return
        if not options["ids"] and not options["all"]:
            raise CommandError(f"give --ids or --all to {options['action']}")
        letters = dead_letters_filter(**filters, dead_letter_ids=options["ids"])
        ids = list(letters.values_list("pk", flat=True))
        if options["dry_run"]:
            self._list(letters, {**options, "limit": len(ids), "json": False})
            verb = "re-driven" if options["action"] == "redrive" else "discarded"
            self.stdout.write(self.style.WARNING(f"dry run: {len(ids)} dead letters would be {verb}; nothing changed"))
            return
        if options["action"] == "discard":
            self.stdout.write(self.style.SUCCESS(f"{dead_letters_discard(dead_letter_ids=ids)} dead letters discarded"))
            return
        self._redrive(ids)

    def _redrive(self, ids: list[int]) -> None:
        done = failed = 0
        progress = Progress("re-driven", total=len(ids), write=self.stdout.write)
        for dead_letter_id in ids:
            try:
                done += dead_letter_redrive_to_broker(dead_letter_id=dead_letter_id)
            except Exception as exc:  # report and go on: one unreachable source must not stop the rest
                failed += 1
                self.stderr.write(f"dead letter {dead_letter_id}: {type(exc).__name__}: {exc}")
            progress.update(done + failed)
        style = self.style.ERROR if failed else self.style.SUCCESS
        self.stdout.write(style(f"{done} dead letters re-driven, {failed} failed"))
        if failed:
            raise CommandError(f"{failed} dead letters could not be re-driven (they stay dead)")

    def _list(self, letters: Any, options: dict[str, Any]) -> None:
        total = letters.count()
        shown = list(letters[: options["limit"]])
        for letter in shown:
            if options["json"]:
                row = {
                    "id": letter.pk,
                    "transport": letter.transport,
                    "source": letter.source,
                    "handler": letter.handler,
                    "event_type": letter.event_type,
                    "event_id": letter.event_id,
                    "state": letter.state,
                    "created_at": letter.created_at.isoformat(),
                    "reason": letter.reason,
                }
                self.stdout.write(json.dumps(row))
            else:
                self.stdout.write(
                    f"{letter.pk:>6} {letter.state:<9} {letter.transport:<8} {letter.source:<40} "
                    f"{letter.handler or '-':<14} {letter.event_type or '?':<15} {letter.reason[:80]}"
                )
        if not options["json"]:
            self.stdout.write(f"{len(shown)} of {total} shown")
