"""Payments admin: filters and search render; retry and refund actions go through the services."""

from __future__ import annotations

import pytest
from django.urls import reverse

from bookings.event_schema import TOUR_CANCELLED
from bookings.models import Booking
from bookings.tests.factories import UserFactory
from messaging.models import OutboxEvent
from payments.models import Payment
from payments.services import payment_charge

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    client.force_login(UserFactory(username="cashier", is_staff=True, is_superuser=True))
    return client


def test_admin_lists_payments_filtered_by_state_and_found_by_gateway_reference(gateway, book, staff_client) -> None:
    # given
    booking = book()
    payment_charge(payment_id=Payment.objects.get(booking=booking).pk, final_attempt=False)
    reference = Payment.objects.get(booking=booking).provider_reference
    book()  # still pending
    url = reverse("admin:payments_payment_changelist")

    # when
    by_state = staff_client.get(url, {"state__exact": "succeeded"})
    by_reference = staff_client.get(url, {"q": reference})

    # then
    assert by_state.status_code == by_reference.status_code == 200
    assert by_state.context["cl"].result_count == 1
    assert [p.provider_reference for p in by_reference.context["cl"].result_list] == [reference]
    assert b"tok_success" not in by_state.content  # the payment token is not shown


def test_admin_retry_action_redrives_dead_payments_only(
    gateway, book, staff_client, django_capture_on_commit_callbacks
) -> None:
    # given
    dead = book()
    book()  # a pending one: the action leaves it alone
    Payment.objects.filter(booking=dead).update(state=Payment.State.DEAD, last_error="gateway unreachable")
    ids = [str(pk) for pk in Payment.objects.values_list("pk", flat=True)]

    # when
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = staff_client.post(
            reverse("admin:payments_payment_changelist"),
            {"action": "redrive_dead", "_selected_action": ids},
            follow=True,
        )

    # then
    assert response.status_code == 200
    assert set(Payment.objects.values_list("state", flat=True)) == {Payment.State.PENDING}
    assert len(callbacks) == 1
    assert b"1 dead payment(s)" in response.content


def test_admin_refund_action_cancels_the_paid_booking_so_the_refund_follows(gateway, book, staff_client) -> None:
    # given
    booking = book()
    payment_charge(payment_id=Payment.objects.get(booking=booking).pk, final_attempt=False)
    charge_id = str(Payment.objects.get(booking=booking).pk)

    # when
    staff_client.post(
        reverse("admin:payments_payment_changelist"),
        {"action": "refund_by_cancelling", "_selected_action": [charge_id]},
    )

    # then
    booking.refresh_from_db()
    assert (booking.status, booking.cancellation_reason) == (Booking.Status.CANCELLED, "staff")
    assert OutboxEvent.objects.filter(aggregate_id=str(booking.pk), event_type=TOUR_CANCELLED).count() == 1
