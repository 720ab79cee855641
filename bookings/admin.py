"""Bookings admin: read-only rows, and a cancel action that goes through the cancel service.

Bookings are created only by ``bookings.services`` (price, seats and the outbox event are written
together), so the admin cannot add or edit them; cancelling from here records ``tour.cancelled``.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from bookings.models import Booking
from bookings.services import booking_cancel_by_staff
from tourapp.exceptions import DomainError
from tourapp.pii import mask_email


@admin.register(Booking)
class BookingAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "user",
        "departure",
        "seats",
        "tier",
        "status",
        "total_price",
        "currency",
        "masked_email",
        "created_at",
    ]
    list_filter = ["status", "tier", "departure__tour", "departure"]
    list_select_related = ["user", "departure__tour"]
    search_fields = ["=id", "user__username", "contact_email"]
    date_hierarchy = "created_at"
    actions = ["cancel_selected"]
    readonly_fields = [field.name for field in Booking._meta.fields]

    @admin.display(description="email")
    def masked_email(self, obj: Booking) -> str:
        return mask_email(obj.contact_email)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Booking | None = None) -> bool:
        return False

    @admin.action(description="Cancel selected bookings (releases seats, records tour.cancelled)")
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Booking]) -> None:
        cancelled = already = 0
        for booking_id, status in queryset.order_by("pk").values_list("pk", "status"):
            if status == Booking.Status.CANCELLED:
                already += 1
                continue
            try:
                booking_cancel_by_staff(booking_id=booking_id)
            except DomainError as exc:
                self.message_user(request, f"Booking {booking_id}: {exc.message}", messages.ERROR)
                continue
            cancelled += 1
        self.message_user(request, f"Cancelled {cancelled} booking(s); {already} were already cancelled.")
