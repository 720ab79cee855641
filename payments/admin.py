"""Payments admin: read-only rows, filters by state and kind, search by gateway reference, and two
staff actions that go through the services: re-drive dead payments, refund (= cancel) paid bookings.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from bookings.services import booking_cancel_by_staff
from payments.models import Payment
from payments.services import payments_redrive
from tourapp.exceptions import DomainError


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "booking",
        "kind",
        "state",
        "amount_minor",
        "currency",
        "provider",
        "provider_reference",
        "attempts",
        "decline_code",
        "updated_at",
    ]
    list_filter = ["state", "kind", "provider", "currency"]
    search_fields = ["=provider_reference", "=idempotency_key", "=booking__id"]
    readonly_fields = [field.name for field in Payment._meta.fields]
    exclude = ["payment_token"]
    actions = ["redrive_dead", "refund_by_cancelling"]
    list_select_related = ["booking"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Payment | None = None) -> bool:
        return False

    @admin.action(description="Retry the selected dead payments", permissions=["change"])
    def redrive_dead(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        count = payments_redrive(payment_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} dead payment(s) sent to the gateway again.")

    @admin.action(description="Refund: cancel the selected charges' bookings (refund follows)", permissions=["change"])
    def refund_by_cancelling(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        # A refund is the consequence of a cancellation (so seats, events and refund always agree).
        booking_ids = sorted(set(queryset.filter(kind=Payment.Kind.CHARGE).values_list("booking_id", flat=True)))
        cancelled = 0
        for booking_id in booking_ids:
            try:
                booking_cancel_by_staff(booking_id=booking_id)
                cancelled += 1
            except DomainError as exc:
                self.message_user(request, f"booking {booking_id}: {exc}", level=messages.ERROR)
        self.message_user(request, f"{cancelled} booking(s) cancelled; their refunds are on their way.")
