"""Admin for tours and departures. Seats reserved change only through bookings, so they are read-only here."""

from __future__ import annotations

from django.contrib import admin

from availability.models import Departure, Tour


class DepartureInline(admin.TabularInline):
    model = Departure
    extra = 0
    fields = ["starts_at", "capacity", "seats_reserved"]
    readonly_fields = ["seats_reserved"]
    ordering = ["starts_at"]


@admin.register(Tour)
class TourAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "base_price", "currency", "created_at"]
    list_filter = ["currency"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [DepartureInline]


@admin.register(Departure)
class DepartureAdmin(admin.ModelAdmin):
    list_display = ["id", "tour", "starts_at", "capacity", "seats_reserved", "seats_left"]
    list_filter = ["tour", "starts_at"]
    list_select_related = ["tour"]
    search_fields = ["=id", "tour__name", "tour__slug"]
    date_hierarchy = "starts_at"
    readonly_fields = ["seats_reserved"]
    autocomplete_fields = ["tour"]

    @admin.display(description="seats left")
    def seats_left(self, obj: Departure) -> int:
        return obj.seats_left
