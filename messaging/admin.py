"""Admin for the outbox: events with their per-destination state, deliveries, requeue, backlog.

Read-only views plus one action (requeue dead deliveries); all logic lives in services and selectors.
The inbox and dead-letter admin live in ``messaging.admin_consumers``.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin, messages
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from messaging.models import OutboxDelivery, OutboxEvent
from messaging.selectors import outbox_backlog_stats
from messaging.services import outbox_requeue_dead

_STATE_COLOURS = {"pending": "#b8860b", "delivered": "#2e7d32", "dead": "#c62828"}


class _ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class OutboxDeliveryInline(admin.TabularInline):
    model = OutboxDelivery
    extra = 0
    can_delete = False
    fields = ["destination", "state", "attempts", "next_attempt_at", "delivered_at", "last_error"]
    readonly_fields = fields  # type: ignore[assignment]  # the same list: every field is read-only

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _requeue_message(request: HttpRequest, count: int) -> None:
    level = messages.SUCCESS if count else messages.WARNING
    messages.add_message(
        request, level, f"{count} dead deliveries requeued." if count else "No dead delivery selected."
    )


@admin.register(OutboxEvent)
class OutboxEventAdmin(_ReadOnlyAdmin):
    list_display = ["id", "event_type", "aggregate", "delivery_states", "correlation_id", "created_at"]
    list_filter = ["deliveries__state", "deliveries__destination", "event_type"]
    search_help_text = "Event id (exact), aggregate id, or correlation id."
    search_fields = ["aggregate_id", "=correlation_id"]
    date_hierarchy = "created_at"
    inlines = [OutboxDeliveryInline]
    actions = ["requeue_dead"]
    readonly_fields = [f.name for f in OutboxEvent._meta.fields]
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[OutboxEvent]:
        deliveries = OutboxDelivery.objects.only("event_id", "destination", "state", "attempts").order_by("destination")
        return super().get_queryset(request).prefetch_related(Prefetch("deliveries", queryset=deliveries))

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        try:
            return queryset.filter(event_id=uuid.UUID(search_term.strip())), False
        except ValueError:
            return super().get_search_results(request, queryset, search_term)

    @admin.display(description="aggregate")
    def aggregate(self, obj: OutboxEvent) -> str:
        return f"{obj.aggregate_type}:{obj.aggregate_id}"

    @admin.display(description="deliveries")
    def delivery_states(self, obj: OutboxEvent) -> str:
        return format_html_join(
            " ",
            '<span style="color:{}">{}: {}{}</span>',
            (
                (
                    _STATE_COLOURS.get(d.state, "inherit"),
                    d.destination,
                    d.state,
                    f" ({d.attempts})" if d.attempts and d.state != "delivered" else "",
                )
                for d in obj.deliveries.all()
            ),
        )

    @admin.action(description="Requeue dead deliveries of the selected events")
    def requeue_dead(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> None:
        ids = OutboxDelivery.objects.filter(event__in=queryset, state=OutboxDelivery.State.DEAD).values_list(
            "id", flat=True
        )
        _requeue_message(request, outbox_requeue_dead(delivery_ids=list(ids)))

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changelist_view(request, {**(extra_context or {}), "outbox_backlog": outbox_backlog_stats()})


@admin.register(OutboxDelivery)
class OutboxDeliveryAdmin(_ReadOnlyAdmin):
    list_display = [
        "id",
        "event_link",
        "destination",
        "state",
        "attempts",
        "next_attempt_at",
        "delivered_at",
        "short_error",
    ]
    list_filter = ["state", "destination", "event__event_type"]
    search_help_text = "Event id (exact) or aggregate key (booking:<id>)."
    search_fields = ["aggregate_key"]
    list_select_related = ["event"]
    actions = ["requeue_dead"]
    readonly_fields = [f.name for f in OutboxDelivery._meta.fields]
    show_full_result_count = False

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        try:
            return queryset.filter(event__event_id=uuid.UUID(search_term.strip())), False
        except ValueError:
            return super().get_search_results(request, queryset, search_term)

    @admin.display(description="event")
    def event_link(self, obj: OutboxDelivery) -> str:
        url = reverse("admin:messaging_outboxevent_change", args=[obj.event_id])
        return format_html('<a href="{}">{} {}</a>', url, obj.event.event_type, obj.event_id)

    @admin.display(description="last error")
    def short_error(self, obj: OutboxDelivery) -> str:
        return obj.last_error[:120]

    @admin.action(description="Requeue the selected dead deliveries")
    def requeue_dead(self, request: HttpRequest, queryset: QuerySet[OutboxDelivery]) -> None:
        ids = queryset.filter(state=OutboxDelivery.State.DEAD).values_list("id", flat=True)
        _requeue_message(request, outbox_requeue_dead(delivery_ids=list(ids)))

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changelist_view(request, {**(extra_context or {}), "outbox_backlog": outbox_backlog_stats()})
