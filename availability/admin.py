"""Admin for tours and departures. Seats reserved change only through bookings, so they are read-only here.

A capacity below the seats already reserved is a form error: the form checks it under the
departure's row lock (held until the admin's transaction commits, so no booking slips in between),
and should the database's ``CheckConstraint`` still refuse the save, that becomes an error message
on the same page, never a 500.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from availability.models import Departure, Tour
from availability.services import CapacityBelowReserved, departure_capacity_check, departure_capacity_violated


class DepartureAdminForm(forms.ModelForm):
    class Meta:
        model = Departure
        fields = ["tour", "starts_at", "capacity"]

    def clean(self) -> dict[str, Any] | None:
        cleaned = super().clean()
        capacity = self.cleaned_data.get("capacity")
        if self.instance.pk is not None and capacity is not None:
            try:
                departure_capacity_check(departure_id=self.instance.pk, capacity=capacity)
            except CapacityBelowReserved as exc:
                self.add_error("capacity", exc.fields["capacity"])
        return cleaned


class CapacityViolationAsMessageMixin:
    """The database refused a capacity the form let through: say so on the form page, no 500.

    The admin's change view runs in one transaction, already rolled back when the error gets here.
    """

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)  # type: ignore[misc]  # a ModelAdmin mixin
        except IntegrityError as exc:
            if not departure_capacity_violated(exc):
                raise
            self.message_user(  # type: ignore[attr-defined]  # a ModelAdmin mixin
                request,
                "Not saved: a departure's capacity cannot be below its reserved seats (they changed meanwhile).",
                level=messages.ERROR,
            )
            return HttpResponseRedirect(request.get_full_path())


class DepartureInline(admin.TabularInline):
    model = Departure
    form = DepartureAdminForm
    extra = 0
    fields = ["starts_at", "capacity", "seats_reserved"]
    readonly_fields = ["seats_reserved"]
    ordering = ["starts_at"]


@admin.register(Tour)
class TourAdmin(CapacityViolationAsMessageMixin, admin.ModelAdmin):
    list_display = ["name", "slug", "base_price", "currency", "created_at"]
    list_filter = ["currency"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [DepartureInline]


@admin.register(Departure)
class DepartureAdmin(CapacityViolationAsMessageMixin, admin.ModelAdmin):
    form = DepartureAdminForm
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
