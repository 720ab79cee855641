"""Departure admin: a capacity below the reserved seats is a form error, never a 500."""

from __future__ import annotations

import pytest
from django.urls import reverse

from availability import admin as availability_admin
from availability.models import Departure
from availability.tests.factories import DepartureFactory
from bookings.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(username="ops", is_staff=True, is_superuser=True))
    return client


def _change(staff_client, departure: Departure, *, capacity: int, follow: bool = False):
    starts_at = departure.starts_at
    return staff_client.post(
        reverse("admin:availability_departure_change", args=[departure.pk]),
        {
            "tour": departure.tour_id,
            "starts_at_0": starts_at.strftime("%Y-%m-%d"),
            "starts_at_1": starts_at.strftime("%H:%M:%S"),
            "capacity": capacity,
        },
        follow=follow,
    )


def test_a_capacity_below_the_reserved_seats_is_a_form_error(staff_client) -> None:
    # given: 8 seats reserved
    departure = DepartureFactory(capacity=10, seats_reserved=8)
    # when
    response = _change(staff_client, departure, capacity=5)
    # then: the form comes back with the reason on the field; nothing saved
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["capacity"] == ["At least 8: seats already reserved."]
    departure.refresh_from_db()
    assert departure.capacity == 10


def test_a_capacity_covering_the_reserved_seats_is_saved(staff_client) -> None:
    departure = DepartureFactory(capacity=10, seats_reserved=8)
    response = _change(staff_client, departure, capacity=8)
    assert response.status_code == 302
    departure.refresh_from_db()
    assert departure.capacity == 8


def test_a_capacity_the_database_refuses_after_the_form_is_an_error_message_not_a_500(
    staff_client, monkeypatch
) -> None:
    # given: seats reserved after the form's check (its lock is what normally prevents this)
    departure = DepartureFactory(capacity=10, seats_reserved=8)
    monkeypatch.setattr(availability_admin, "departure_capacity_check", lambda *, departure_id, capacity: None)
    # when
    response = _change(staff_client, departure, capacity=5, follow=True)
    # then: back on the change page with the reason
    assert response.status_code == 200
    assert response.redirect_chain[-1][0].endswith(f"/{departure.pk}/change/")
    assert b"cannot be below its reserved seats" in response.content
    departure.refresh_from_db()
    assert departure.capacity == 10


def test_the_tour_page_refuses_an_inline_capacity_below_the_reserved_seats(staff_client) -> None:
    # given
    departure = DepartureFactory(capacity=10, seats_reserved=6)
    tour = departure.tour
    starts_at = departure.starts_at
    prefix = "departures"
    # when
    response = staff_client.post(
        reverse("admin:availability_tour_change", args=[tour.pk]),
        {
            "name": tour.name,
            "slug": tour.slug,
            "description": tour.description,
            "base_price": str(tour.base_price),
            "currency": tour.currency,
            f"{prefix}-TOTAL_FORMS": "1",
            f"{prefix}-INITIAL_FORMS": "1",
            f"{prefix}-MIN_NUM_FORMS": "0",
            f"{prefix}-MAX_NUM_FORMS": "1000",
            f"{prefix}-0-id": departure.pk,
            f"{prefix}-0-tour": tour.pk,
            f"{prefix}-0-starts_at_0": starts_at.strftime("%Y-%m-%d"),
            f"{prefix}-0-starts_at_1": starts_at.strftime("%H:%M:%S"),
            f"{prefix}-0-capacity": 2,
        },
    )
    # then
    assert response.status_code == 200
    formset = response.context["inline_admin_formsets"][0].formset
    assert formset.forms[0].errors["capacity"] == ["At least 6: seats already reserved."]
    departure.refresh_from_db()
    assert departure.capacity == 10
