"""Query parameters of ``GET /api/bookings/`` (django-filter): parsed and validated here, applied by
``bookings.selectors.booking_list_filter``.

Guarantees: a value that does not parse (an unknown status, an id that is not a positive 64-bit
integer, a date that is not ISO 8601 or out of range, an empty or reversed date range) is a 400
naming the parameter, never a 500 and never ignored; a filter only narrows the queryset it is
given (the user's own bookings), keeping its order. An empty parameter (``?status=``) is no filter.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema_field

from bookings.models import Booking
from bookings.selectors import booking_list_filter

ID_MAX = 2**63 - 1


class IdFilter(django_filters.NumberFilter):
    """A positive 64-bit id: whole numbers only (django-filter's NumberFilter takes decimals)."""

    field_class = forms.IntegerField


class InstantField(IsoDateTimeField):
    """ISO 8601 date or date-time; without an offset it is UTC. One that cannot be expressed in UTC
    (year 1 at +01:00, say) is invalid here rather than an overflow in the database adapter."""

    def to_python(self, value: Any) -> datetime | None:
        instant = super().to_python(value)
        if instant is not None:
            try:
                instant.astimezone(UTC)
            except OverflowError:
                raise forms.ValidationError("Out of the supported date range.", code="invalid") from None
        return instant


class InstantFilter(django_filters.IsoDateTimeFilter):
    field_class = InstantField


def _id_filter(*, field_name: str, help_text: str) -> IdFilter:
    id_filter = IdFilter(field_name=field_name, help_text=help_text, min_value=1, max_value=ID_MAX)
    schema = {"type": "integer", "format": "int64", "minimum": 1, "maximum": ID_MAX, "description": help_text}
    return extend_schema_field(schema)(id_filter)


class BookingFilterForm(forms.Form):
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        after, before = cleaned.get("starts_after"), cleaned.get("starts_before")
        if after is not None and before is not None and after >= before:
            self.add_error("starts_before", "Must be later than starts_after.")
        return cleaned


class BookingFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Booking.Status.choices, help_text="Only bookings in this status.")
    payment_status = django_filters.ChoiceFilter(
        choices=Booking.PaymentStatus.choices, help_text="Only bookings whose payment is in this state."
    )
    departure = _id_filter(field_name="departure_id", help_text="Only bookings on this departure (its id).")
    tour = _id_filter(field_name="departure__tour_id", help_text="Only bookings on departures of this tour (its id).")
    starts_after = InstantFilter(
        field_name="departure__starts_at",
        lookup_expr="gte",
        help_text="Only departures starting at or after this instant (ISO 8601, e.g. 2027-06-01 or "
        "2027-06-01T08:00:00Z; UTC without an offset).",
    )
    starts_before = InstantFilter(
        field_name="departure__starts_at",
        lookup_expr="lt",
        help_text="Only departures starting strictly before this instant (ISO 8601); must be later than starts_after.",
    )

    class Meta:
        model = Booking
        fields: list[str] = []  # the declared filters only
        form = BookingFilterForm

    def filter_queryset(self, queryset: QuerySet[Booking]) -> QuerySet[Booking]:
        # The narrowing itself is the selector's, so it is one piece of code whoever filters.
        data = self.form.cleaned_data
        return booking_list_filter(
            bookings=queryset,
            status=data.get("status") or None,
            payment_status=data.get("payment_status") or None,
            departure_id=data.get("departure"),
            tour_id=data.get("tour"),
            starts_after=data.get("starts_after"),
            starts_before=data.get("starts_before"),
        )
