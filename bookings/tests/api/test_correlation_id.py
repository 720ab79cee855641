"""The correlation id of a booking request is returned and stored on its outbox row."""

from __future__ import annotations

import pytest

from messaging.models import OutboxEvent

pytestmark = pytest.mark.django_db


def test_a_sane_correlation_id_is_kept_returned_and_stored_on_the_outbox_row(api, departure) -> None:
    # when
    response = api.post(
        "/api/bookings/",
        {"departure_id": departure.pk, "seats": 1, "tier": "standard"},
        format="json",
        HTTP_X_CORRELATION_ID="checkout-7f3a.42",
    )

    # then
    assert response.status_code == 201
    assert response["X-Correlation-ID"] == "checkout-7f3a.42"
    event = OutboxEvent.objects.get()
    assert event.correlation_id == "checkout-7f3a.42"
    assert event.headers["correlationId"] == "checkout-7f3a.42"


@pytest.mark.parametrize("bad", ["has spaces", "x" * 200, "<script>", "ab\u00e9", "trailing-newline\n"])
def test_an_insane_correlation_id_is_replaced_and_the_replacement_is_stored(api, departure, bad) -> None:
    # when
    response = api.post(
        "/api/bookings/",
        {"departure_id": departure.pk, "seats": 1, "tier": "standard"},
        format="json",
        HTTP_X_CORRELATION_ID=bad,
    )

    # then
    assert response.status_code == 201
    returned = response["X-Correlation-ID"]
    assert returned != bad and len(returned) == 32
    assert OutboxEvent.objects.get().correlation_id == returned


def test_a_missing_correlation_id_is_generated_and_stored(api, departure) -> None:
    response = api.post("/api/bookings/", {"departure_id": departure.pk, "seats": 1, "tier": "standard"})
    assert response.status_code == 201
    assert OutboxEvent.objects.get().correlation_id == response["X-Correlation-ID"]
