"""Admin: list pages render with masked emails; the cancel action goes through the cancel service."""

from __future__ import annotations

import pytest
from django.urls import reverse

from bookings.event_schema import TOUR_CANCELLED
from bookings.models import Booking
from bookings.tests.factories import UserFactory, booking_create
from messaging.models import OutboxEvent
from tourapp.pii import mask_email

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(username="boss", is_staff=True, is_superuser=True))
    return client


def test_admin_cancel_action_cancels_through_the_service_and_records_tour_cancelled(staff_client, departure) -> None:
    # given
    bookings = [
        booking_create(user=UserFactory(), departure_id=departure.pk, seats=2, tier="standard") for _ in range(2)
    ]
    ids = [str(b.pk) for b in bookings]

    # when
    response = staff_client.post(
        reverse("admin:bookings_booking_changelist"),
        {"action": "cancel_selected", "_selected_action": ids},
        follow=True,
    )

    # then
    assert response.status_code == 200
    assert set(Booking.objects.values_list("status", flat=True)) == {Booking.Status.CANCELLED}
    assert OutboxEvent.objects.filter(event_type=TOUR_CANCELLED).count() == 2
    departure.refresh_from_db()
    assert departure.seats_reserved == 0

    # and: running it again cancels nothing more
    staff_client.post(
        reverse("admin:bookings_booking_changelist"), {"action": "cancel_selected", "_selected_action": ids}
    )
    assert OutboxEvent.objects.filter(event_type=TOUR_CANCELLED).count() == 2


def test_admin_booking_list_shows_masked_email_and_supports_filters_and_search(staff_client, departure) -> None:
    # given
    booking = booking_create(
        user=UserFactory(username="alice"),
        departure_id=departure.pk,
        seats=1,
        tier="premium",
        contact_email="alice.smith@example.com",
    )
    url = reverse("admin:bookings_booking_changelist")

    # when
    listing = staff_client.get(url)
    filtered = staff_client.get(url, {"status__exact": "confirmed", "tier__exact": "premium", "q": "alice"})
    detail = staff_client.get(reverse("admin:bookings_booking_change", args=[booking.pk]))

    # then
    assert listing.status_code == filtered.status_code == detail.status_code == 200
    assert "a***@example.com" in listing.content.decode()
    assert "alice.smith@example.com" not in listing.content.decode()
    assert filtered.context["cl"].result_count == 1


def test_admin_tour_and_departure_pages_render(staff_client, departure) -> None:
    assert staff_client.get(reverse("admin:availability_tour_changelist")).status_code == 200
    assert staff_client.get(reverse("admin:availability_departure_changelist")).status_code == 200
    assert staff_client.get(reverse("admin:availability_tour_change", args=[departure.tour_id])).status_code == 200


def test_admin_booking_pages_render_a_contact_email_with_an_empty_local_part(staff_client, departure) -> None:
    # given an address the API would refuse but older rows or foreign imports may hold
    booking = booking_create(
        user=UserFactory(), departure_id=departure.pk, seats=1, tier="standard", contact_email="@example.com"
    )
    # when
    listing = staff_client.get(reverse("admin:bookings_booking_changelist"))
    detail = staff_client.get(reverse("admin:bookings_booking_change", args=[booking.pk]))
    # then
    assert listing.status_code == detail.status_code == 200
    assert "***@example.com" in listing.content.decode()


def test_the_admin_masks_emails_with_the_one_shared_masker() -> None:
    from bookings import admin as bookings_admin
    from notifications import services as notification_services

    assert bookings_admin.mask_email is mask_email is notification_services.mask_email


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("alice@example.com", "a***@example.com"),
        ("bo@x.fr", "b***@x.fr"),
        ("@example.com", "***@example.com"),
        ("broken", "***"),
        ("", "***"),
    ],
)
def test_mask_email_keeps_the_first_letter_and_the_domain_only(email, masked) -> None:
    assert mask_email(email) == masked
