"""Admin for the consumers' records: the inbox (``ProcessedMessage``) and ``DeadLetter`` with re-drive.

Both are read-only records: nothing is added, edited or deleted here (deleting an inbox row would
let a replay apply its event twice; a dead letter is discarded, not deleted). Re-drive and discard
are actions on the list, and re-drive is a button on a dead letter's page, for users with the
model's change permission.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from messaging.admin import ReadOnlyAdmin, pretty_json
from messaging.dead_letters import dead_letter_redrive_to_broker, dead_letters_discard
from messaging.models import DeadLetter, ProcessedMessage

_DEAD_LETTER_FIELDS: tuple[str, ...] = (
    *(f.name for f in DeadLetter._meta.fields if f.name not in ("id", "body", "headers")),
    "body_pretty",
    "headers_pretty",
)


@admin.register(ProcessedMessage)
class ProcessedMessageAdmin(ReadOnlyAdmin):
    list_display = ["id", "handler", "dedup_key", "transport", "correlation_id", "processed_at"]
    list_filter = ["handler", "transport"]
    search_fields = ["dedup_key", "event_id", "correlation_id"]
    date_hierarchy = "processed_at"
    readonly_fields = [f.name for f in ProcessedMessage._meta.fields]
    show_full_result_count = False


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ["id", "transport", "source", "handler", "event_type", "short_reason", "state", "created_at"]
    list_filter = ["state", "transport", "handler", "event_type"]
    search_fields = ["reason", "event_id", "correlation_id", "message_key"]
    date_hierarchy = "created_at"
    fields = _DEAD_LETTER_FIELDS
    readonly_fields = _DEAD_LETTER_FIELDS
    actions = ["redrive", "discard"]
    operator_action_label = "Re-drive to the source queue / topic"

    @admin.display(description="reason")
    def short_reason(self, obj: DeadLetter) -> str:
        return obj.reason[:120]

    @admin.display(description="body")
    def body_pretty(self, obj: DeadLetter) -> str:
        return pretty_json(obj.body)

    @admin.display(description="headers")
    def headers_pretty(self, obj: DeadLetter) -> str:
        return pretty_json(obj.headers)

    def operator_action_applies(self, obj: DeadLetter) -> bool:
        return obj.state == DeadLetter.State.DEAD

    def operator_action_run(self, request: HttpRequest, obj: DeadLetter) -> None:
        self._redrive(request, [obj.pk])

    def _redrive(self, request: HttpRequest, ids: list[int]) -> None:
        done = failed = 0
        for dead_letter_id in ids:
            try:
                done += dead_letter_redrive_to_broker(dead_letter_id=dead_letter_id)
            except Exception as exc:  # one unreachable source must not hide the others' outcome
                failed += 1
                self.message_user(request, f"dead letter {dead_letter_id}: {exc}", messages.ERROR)
        self.message_user(request, f"re-drove {done} message(s); {failed} failed.")

    @admin.action(description="Re-drive to the source queue / topic", permissions=["operate"])
    def redrive(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        self._redrive(request, list(queryset.filter(state=DeadLetter.State.DEAD).values_list("pk", flat=True)))

    @admin.action(description="Discard (keep the record, stop showing it as dead)", permissions=["operate"])
    def discard(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        count = dead_letters_discard(dead_letter_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"discarded {count} message(s).")
