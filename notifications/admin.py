"""Admin for notifications: masked recipients only, status filters, a resend action.

Read-only records (no add, change or delete: a notification is the record that a message went
out); resend is the one action, for users with the change permission.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from messaging.admin import pretty_json
from notifications.models import Notification, NotificationPreference
from notifications.services import notifications_resend


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "channel",
        "recipient_masked",
        "event_type",
        "booking_id",
        "language",
        "status",
        "attempts",
        "sent_at",
    ]
    list_filter = ["status", "channel", "event_type", "language"]
    search_fields = ["booking_id", "event_id", "correlation_id", "dedup_key"]
    date_hierarchy = "created_at"
    # The clear recipient is deliberately absent from the admin.
    fields = [
        "channel",
        "recipient_masked",
        "language",
        "status",
        "attempts",
        "last_error",
        "summary",
        "event_type",
        "event_id",
        "dedup_key",
        "booking_id",
        "correlation_id",
        "context_pretty",
        "created_at",
        "updated_at",
        "sent_at",
    ]
    readonly_fields = fields  # type: ignore[assignment]  # the same list: every field is read-only
    actions = ["resend"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # every field is read-only: a view page without Save buttons

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_resend_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("notifications.change_notification")

    @admin.display(description="context")
    def context_pretty(self, obj: Notification) -> str:
        return pretty_json(obj.context)

    @admin.action(description="Resend (failed or stuck pending; sent ones are skipped)", permissions=["resend"])
    def resend(self, request: HttpRequest, queryset: QuerySet[Notification]) -> None:
        count = notifications_resend(notification_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} notification(s) queued for sending.")


@admin.register(NotificationPreference)
class NotificationPreferenceAdmin(admin.ModelAdmin):
    list_display = ["user", "language"]
    list_filter = ["language"]
    raw_id_fields = ["user"]
