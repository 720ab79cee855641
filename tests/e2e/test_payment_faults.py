"""Payment fault scenarios against the real processes (web, worker, beat, Kafka consumer and the
dummy gateway over HTTP). Each prints one JSON line of payment figures and proves that money is
never wrong: double charges = lost payments = declined-but-booked = mismatches = 0.

Figures (``payment_figures``), for the bookings of one scenario:
- *charges*: charges the gateway captured; *declined*: charges it declined;
- *double_charges*: captured charges beyond the first for one booking (the gateway's records);
- *lost*: a booking without a charge row, a confirmed booking not ``paid``, a paid-and-cancelled
  booking without its refund, a pending or dead payment at the end, a gateway charge we did not record;
- *compensated*: bookings cancelled with reason ``payment_declined`` (seats released);
- *refunds*: refunds the gateway made; *mismatches*: what ``payments_reconcile`` reports;
- *attempts*: gateway calls our side counted (retries show as attempts above the payment count).

These kill only processes the harness started (the worker, the dummy gateway), never a broker.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.harness import System, fire_bookings, http_request
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.fault, pytest.mark.django_db(transaction=True)]

SETTLE_TIMEOUT = 120


@dataclass(frozen=True)
class Customers:
    api_tokens: list[str]
    payment_tokens: list[str]  # the payment token each customer books with ("" = the default)

    def __add__(self, other: Customers) -> Customers:
        return Customers(self.api_tokens + other.api_tokens, self.payment_tokens + other.payment_tokens)

    def first(self, n: int) -> Customers:
        return Customers(self.api_tokens[:n], self.payment_tokens[:n])


def _users(n: int, *, token: str = "") -> Customers:
    """``n`` users with API tokens, each booking with payment token ``token`` (the dummy gateway's outcome)."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    keys = []
    for _ in range(n):
        name = f"pay-{uuid.uuid4().hex[:10]}"
        user = get_user_model().objects.create_user(name, f"{name}@example.com", "e2e-password-123")
        keys.append(Token.objects.create(user=user).key)
    return Customers(keys, [token] * n)


def _book(system: System, customers: Customers, departure_ids: list[int], count: int) -> list[int]:
    burst = fire_bookings(
        system.base_url,
        tokens=customers.api_tokens,
        payment_tokens=customers.payment_tokens,
        departure_ids=departure_ids,
        count=count,
        clients=4,
    )
    assert burst.status_counts() == {201: count}, burst.status_counts()
    return burst.created_ids


def _gateway_records(system: System, booking_ids: set[str]) -> list[Any]:
    from payments.gateway import HttpDummyGateway

    records = HttpDummyGateway(base_url=system.gateway_url, timeout=10).records()
    return [record for record in records if record.booking_id in booking_ids]


def payment_figures(scenario: str, system: System, booking_ids: list[int]) -> dict[str, Any]:
    from bookings.models import Booking
    from payments.models import Payment
    from payments.selectors import payments_reconcile

    ids = {str(pk) for pk in booking_ids}
    records = _gateway_records(system, ids)
    captured = [r for r in records if r.kind == "charge" and r.status == "succeeded"]
    per_booking = Counter(r.booking_id for r in captured)
    payments = list(Payment.objects.filter(booking_id__in=booking_ids))
    by_key = {(p.booking_id, p.kind): p for p in payments}
    bookings = list(Booking.objects.filter(pk__in=booking_ids))
    lost = sum(1 for b in bookings if (b.pk, "charge") not in by_key)
    lost += sum(1 for b in bookings if b.status == "confirmed" and b.payment_status != "paid")
    lost += sum(
        1
        for b in bookings
        if b.status == "cancelled"
        and by_key.get((b.pk, "charge")) is not None
        and by_key[(b.pk, "charge")].state == "succeeded"
        and b.payment_status != "refunded"
    )
    lost += sum(1 for p in payments if p.state in ("pending", "dead"))
    recorded = {p.provider_reference for p in payments if p.state == "succeeded"}
    lost += sum(1 for r in captured if r.reference not in recorded)
    report = payments_reconcile(gateway_records=records)
    return {
        "scenario": scenario,
        "bookings": len(bookings),
        "charges": len(captured),
        "declined": sum(1 for r in records if r.kind == "charge" and r.status == "declined"),
        "double_charges": sum(n - 1 for n in per_booking.values()),
        "lost": lost,
        "declined_but_booked": sum(
            1
            for b in bookings
            if b.status == "confirmed" and getattr(by_key.get((b.pk, "charge")), "state", "") == "failed"
        ),
        "compensated": sum(
            1 for b in bookings if b.cancellation_reason == "payment_declined" and b.status == "cancelled"
        ),
        "refunds": sum(1 for r in records if r.kind == "refund"),
        "mismatches": len(report.mismatches),
        "mismatch_codes": sorted({m.code for m in report.mismatches}),
        "attempts": sum(p.attempts for p in payments),
    }


def _settled(booking_ids: list[int]) -> bool:
    from payments.models import Payment

    rows = Payment.objects.filter(booking_id__in=booking_ids)
    charges = rows.filter(kind="charge").count()
    return charges == len(booking_ids) and not rows.filter(state__in=["pending", "dead"]).exists()


def _wait_settled(booking_ids: list[int], *, what: str) -> float:
    started = time.monotonic()
    wait_until(lambda: _settled(booking_ids), timeout=SETTLE_TIMEOUT, what=what, interval=0.5)
    return round(time.monotonic() - started, 2)


def _assert_money_right(figures: dict[str, Any]) -> None:
    print(json.dumps(figures, sort_keys=True))
    wrong = {k: figures[k] for k in ("double_charges", "lost", "declined_but_booked", "mismatches")}
    assert wrong == {"double_charges": 0, "lost": 0, "declined_but_booked": 0, "mismatches": 0}, figures


def test_a_decline_in_a_burst_is_compensated_and_its_seats_are_sold_again_then_cancellations_refund(
    system, make_departures
):
    from availability.models import Departure
    from bookings.models import Booking
    from messaging.models import OutboxEvent
    from notifications.models import Notification

    # given: one departure of 12 seats, 8 paying customers and 4 whose card is declined
    (departure_id,) = make_departures(1, capacity=12)
    payers, decliners = _users(8), _users(4, token="tok_decline")

    # when: the burst sells the departure out
    first = _book(system, payers + decliners, [departure_id], 12)
    drain = _wait_settled(first, what="every charge of the burst settled")

    # then: the 4 declined bookings are cancelled with the reason and their seats are free again
    declined = list(Booking.objects.filter(pk__in=first, cancellation_reason="payment_declined"))
    assert len(declined) == 4 and all(b.payment_status == "failed" for b in declined)
    assert Departure.objects.get(pk=departure_id).seats_reserved == 8
    # and they are sold again
    again = _book(system, payers.first(4), [departure_id], 4)
    _wait_settled(again, what="the re-sold seats paid")
    assert Departure.objects.get(pk=departure_id).seats_reserved == 12
    # and each decliner hears "payment failed", under the booking's one correlation id
    wait_until(
        lambda: Notification.objects.filter(event_type="payment.failed", status="sent").count() >= 4,
        timeout=60,
        what="the payment-failed emails sent",
    )
    for booking in declined:
        cids = set(OutboxEvent.objects.filter(aggregate_id=str(booking.pk)).values_list("correlation_id", flat=True))
        cids |= set(Notification.objects.filter(booking_id=str(booking.pk)).values_list("correlation_id", flat=True))
        assert len(cids) == 1, cids

    # when: three paid bookings are cancelled by their owners
    paid = list(Booking.objects.filter(pk__in=first, status="confirmed").select_related("user")[:3])
    for booking in paid:
        token = booking.user.auth_token.key
        response = http_request(system.base_url, "POST", f"/api/bookings/{booking.pk}/cancel/", token=token)
        assert response.status == 200, response.body
    wait_until(
        lambda: Booking.objects.filter(pk__in=[b.pk for b in paid], payment_status="refunded").count() == 3,
        timeout=SETTLE_TIMEOUT,
        what="the three refunds",
    )

    # then
    figures = payment_figures("decline_burst_resell_refund", system, first + again)
    figures["drain_seconds"] = drain
    _assert_money_right(figures)
    assert (figures["compensated"], figures["charges"], figures["refunds"]) == (4, 12, 3), figures


def test_the_gateway_down_during_a_burst_delays_charges_then_each_goes_through_once(system, make_departures):
    # given
    departure_ids = make_departures(2)
    tokens = _users(4)
    before = _book(system, tokens, departure_ids, 10)

    # when: the provider dies (SIGKILL) for a burst, and comes back
    system.kill("payments_gateway")
    try:
        during = _book(system, tokens, departure_ids, 10)
        wait_until(
            lambda: _attempts(during) > len(during), timeout=60, what="charges retried while the gateway is down"
        )
    finally:
        system.start("payments_gateway")
    recovered = time.monotonic()
    after = _book(system, tokens, departure_ids, 10)
    _wait_settled(before + during + after, what="every charge through after the outage")

    # then
    figures = payment_figures("gateway_down_burst", system, before + during + after)
    figures["drain_seconds"] = round(time.monotonic() - recovered, 2)
    _assert_money_right(figures)
    assert figures["charges"] == 30 and figures["attempts"] > 30, figures


def _attempts(booking_ids: list[int]) -> int:
    from django.db.models import Sum

    from payments.models import Payment

    return Payment.objects.filter(booking_id__in=booking_ids).aggregate(n=Sum("attempts"))["n"] or 0


def test_a_worker_sigkilled_between_charge_and_record_gets_the_same_charge_after_restart(system, make_departures):
    from payments.models import Payment

    # given: slow charges (the gateway stores the charge, then answers 3 s later)
    departure_ids = make_departures(1)
    ids = _book(system, _users(3, token="tok_slow"), departure_ids, 6)

    # when: the worker dies while the gateway holds charges we have not recorded
    def charged_not_recorded() -> int:
        charged = {r.booking_id for r in _gateway_records(system, {str(i) for i in ids}) if r.kind == "charge"}
        pending = {
            str(pk)
            for pk in Payment.objects.filter(booking_id__in=ids, state="pending").values_list("booking_id", flat=True)
        }
        return len(charged & pending)

    in_flight = wait_until(charged_not_recorded, timeout=60, what="a charge made but not yet recorded", interval=0.1)
    system.kill("worker")
    system.start("worker")
    drain = _wait_settled(ids, what="every charge recorded after the worker restart")

    # then
    figures = payment_figures("worker_sigkill_between_charge_and_record", system, ids)
    figures |= {"charged_unrecorded_at_kill": in_flight, "drain_seconds": drain}
    _assert_money_right(figures)
    assert figures["charges"] == 6, figures


def test_a_gateway_timeout_after_the_charge_took_place_is_retried_into_the_same_charge(system, make_departures):
    # given: the gateway charges, then answers after our 1 s timeout (3 s), the first time per key
    ids = _book(system, _users(2, token="tok_timeout"), make_departures(1), 4)

    # when
    drain = _wait_settled(ids, what="every timed-out charge recorded")

    # then
    figures = payment_figures("gateway_timeout_after_charge", system, ids)
    figures["drain_seconds"] = drain
    _assert_money_right(figures)
    assert figures["charges"] == 4 and figures["attempts"] >= 8, figures


def test_a_poison_payment_message_is_dead_lettered_and_payments_go_on(system, make_departures):
    from kombu import Exchange

    from messaging.amqp import events_connection
    from messaging.models import DeadLetter

    # given: garbage on the payments consumer's routing key
    with events_connection(transport_options={"confirm_publish": True}) as conn:
        conn.Producer(conn.channel()).publish(
            b"{not json",
            exchange=Exchange(system.exchange, type="topic", durable=True),
            routing_key="tour.booked.standard",
            headers={"eventType": "tour.booked"},
            content_type="application/json",
            delivery_mode=2,
        )

    # when
    ids = _book(system, _users(2), make_departures(1), 5)
    drain = _wait_settled(ids, what="the charges after the poison message")

    # then
    dead = wait_until(
        lambda: DeadLetter.objects.filter(handler="payments").first(), timeout=30, what="the payments dead letter"
    )
    assert dead.source == f"{system.queue_prefix}payments.tour_events" and "malformed JSON" in dead.reason
    figures = payment_figures("poison_payment_message", system, ids)
    figures |= {"dead_lettered": DeadLetter.objects.filter(handler="payments").count(), "drain_seconds": drain}
    _assert_money_right(figures)
    assert figures["charges"] == 5, figures
