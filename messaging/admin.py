"""Admin for the outbox: events with their per-destination state, deliveries, requeue, backlog.

Append-only and read-only: no add, change or delete (the outbox is the record of what was sent;
the retention purge is the only delete). One operator action, requeue dead deliveries, on the
lists and as a button on the detail page, for users with the model's change permission. All logic
lives in services and selectors. The inbox and dead-letter admin live in ``messaging.admin_consumers``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from messaging.models import OutboxDelivery, OutboxEvent
from messaging.selectors import outbox_backlog_stats
from messaging.services import outbox_requeue_dead

_STATE_COLOURS = {"pending": "#b8860b", "delivered": "#2e7d32", "dead": "#c62828"}


def pretty_json(value: Any) -> SafeString:
    """A JSON value (or a string holding JSON) indented in a ``<pre>``; other text shown as is."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return format_html('<pre style="white-space:pre-wrap">{}</pre>', value)
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return format_html('<pre style="white-space:pre-wrap;margin:0">{}</pre>', text)


class NoWrites:
    """Nobody adds, changes or deletes these rows by hand: the relay and the consumers own them."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ReadOnlyAdmin(NoWrites, admin.ModelAdmin):
    """Detail pages without Save buttons, lists without "Delete selected".

    ``operator_action`` (label, callable) puts one POST button on the detail page, shown when the
    object qualifies and the user holds the model's change permission (the admin's own change
    permission stays off so every field is read-only).
    """

    change_form_template = "admin/messaging/change_form_with_action.html"
    operator_action_label = ""

    def has_operate_permission(self, request: HttpRequest) -> bool:
        opts = self.model._meta
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    def operator_action_applies(self, obj: Any) -> bool:
        return False

    def operator_action_run(self, request: HttpRequest, obj: Any) -> None:
        raise NotImplementedError

    def _action_url_name(self) -> str:
        return f"{self.model._meta.app_label}_{self.model._meta.model_name}_operate"

    def get_urls(self) -> list[URLPattern]:
        view = require_POST(self.admin_site.admin_view(self._operate_view))
        return [path("<path:object_id>/operate/", view, name=self._action_url_name()), *super().get_urls()]

    def _operate_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not self.has_operate_permission(request):
            raise PermissionDenied
        obj = self.get_object(request, unquote(object_id))  # None for a malformed or unknown id
        if obj is None:
            raise Http404(f"no {self.model._meta.verbose_name} {object_id!r}")
        if self.operator_action_applies(obj):
            self.operator_action_run(request, obj)
        else:
            self.message_user(request, f"Nothing to do: {obj} is not in a state for this.", messages.WARNING)
        opts = self.model._meta
        return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk]))

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = dict(extra_context or {})
        obj = self.get_object(request, object_id)
        if obj is not None and self.operator_action_applies(obj) and self.has_operate_permission(request):
            url = reverse(f"admin:{self._action_url_name()}", args=[obj.pk])
            context["object_action"] = {"url": url, "label": self.operator_action_label}
        return super().change_view(request, object_id, form_url, context)


class OutboxDeliveryInline(NoWrites, admin.TabularInline):
    model = OutboxDelivery
    extra = 0
    can_delete = False
    fields = ["destination", "state", "attempts", "next_attempt_at", "delivered_at", "last_error"]
    readonly_fields = fields  # type: ignore[assignment]  # the same list: every field is read-only


_EVENT_FIELDS: tuple[str, ...] = (
    *(f.name for f in OutboxEvent._meta.fields if f.name not in ("id", "payload", "headers")),
    "payload_pretty",
    "headers_pretty",
)


def _requeue_message(request: HttpRequest, count: int) -> None:
    level = messages.SUCCESS if count else messages.WARNING
    messages.add_message(
        request, level, f"{count} dead deliveries requeued." if count else "No dead delivery selected."
    )


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ["id", "event_type", "aggregate", "delivery_states", "correlation_id", "created_at"]
    list_filter = ["deliveries__state", "deliveries__destination", "event_type"]
    search_help_text = "Event id (exact), aggregate id, or correlation id."
    search_fields = ["aggregate_id", "=correlation_id"]
    date_hierarchy = "created_at"
    inlines = [OutboxDeliveryInline]
    actions = ["requeue_dead"]
    fields = _EVENT_FIELDS
    readonly_fields = _EVENT_FIELDS
    show_full_result_count = False
    operator_action_label = "Requeue dead deliveries"

    @admin.display(description="payload")
    def payload_pretty(self, obj: OutboxEvent) -> str:
        return pretty_json(obj.payload)

    @admin.display(description="headers")
    def headers_pretty(self, obj: OutboxEvent) -> str:
        return pretty_json(obj.headers)

    def operator_action_applies(self, obj: OutboxEvent) -> bool:
        return obj.deliveries.filter(state=OutboxDelivery.State.DEAD).exists()

    def operator_action_run(self, request: HttpRequest, obj: OutboxEvent) -> None:
        ids = obj.deliveries.filter(state=OutboxDelivery.State.DEAD).values_list("id", flat=True)
        _requeue_message(request, outbox_requeue_dead(delivery_ids=list(ids)))

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

    @admin.action(description="Requeue dead deliveries of the selected events", permissions=["operate"])
    def requeue_dead(self, request: HttpRequest, queryset: QuerySet[OutboxEvent]) -> None:
        ids = OutboxDelivery.objects.filter(event__in=queryset, state=OutboxDelivery.State.DEAD).values_list(
            "id", flat=True
        )
        _requeue_message(request, outbox_requeue_dead(delivery_ids=list(ids)))

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changelist_view(request, {**(extra_context or {}), "outbox_backlog": outbox_backlog_stats()})


@admin.register(OutboxDelivery)
class OutboxDeliveryAdmin(ReadOnlyAdmin):
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
    operator_action_label = "Requeue this dead delivery"

    def operator_action_applies(self, obj: OutboxDelivery) -> bool:
        return obj.state == OutboxDelivery.State.DEAD

    def operator_action_run(self, request: HttpRequest, obj: OutboxDelivery) -> None:
        _requeue_message(request, outbox_requeue_dead(delivery_ids=[obj.pk]))

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

    @admin.action(description="Requeue the selected dead deliveries", permissions=["operate"])
    def requeue_dead(self, request: HttpRequest, queryset: QuerySet[OutboxDelivery]) -> None:
        ids = queryset.filter(state=OutboxDelivery.State.DEAD).values_list("id", flat=True)
        _requeue_message(request, outbox_requeue_dead(delivery_ids=list(ids)))

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changelist_view(request, {**(extra_context or {}), "outbox_backlog": outbox_backlog_stats()})
