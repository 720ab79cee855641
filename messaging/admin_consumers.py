"""Admin for the consumers' records: the inbox (``ProcessedMessage``) and ``DeadLetter`` with re-drive."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from messaging.dead_letters import dead_letter_redrive_to_broker
from messaging.models import DeadLetter, ProcessedMessage


@admin.register(ProcessedMessage)
class ProcessedMessageAdmin(admin.ModelAdmin):
    list_display = ["id", "handler", "dedup_key", "transport", "correlation_id", "processed_at"]
    list_filter = ["handler", "transport"]
    search_fields = ["dedup_key", "event_id", "correlation_id"]
    date_hierarchy = "processed_at"
    readonly_fields = [f.name for f in ProcessedMessage._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = ["id", "transport", "source", "handler", "event_type", "short_reason", "state", "created_at"]
    list_filter = ["state", "transport", "handler", "event_type"]
    search_fields = ["reason", "event_id", "correlation_id", "message_key"]
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in DeadLetter._meta.fields]
    actions = ["redrive", "discard"]

    @admin.display(description="reason")
    def short_reason(self, obj: DeadLetter) -> str:
        return obj.reason[:120]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Re-drive to the source queue / topic")
    def redrive(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        done = failed = 0
        for dead_letter_id in queryset.filter(state=DeadLetter.State.DEAD).values_list("pk", flat=True):
            try:
                done += dead_letter_redrive_to_broker(dead_letter_id=dead_letter_id)
            except Exception as exc:
                failed += 1
                self.message_user(request, f"dead letter {dead_letter_id}: {exc}", messages.ERROR)
        self.message_user(request, f"re-drove {done} message(s); {failed} failed.")

    @admin.action(description="Discard (keep the record, stop showing it as dead)")
    def discard(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        count = queryset.filter(state=DeadLetter.State.DEAD).update(state=DeadLetter.State.DISCARDED)
        self.message_user(request, f"discarded {count} message(s).")
