"""The staff-only operations dashboard, linked from the admin index."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_user("ops-staff", password="pw-ops-staff-1", is_staff=True)
    client.force_login(user)
    return client


def test_dashboard_shows_backlog_dead_deliveries_dead_letters_and_failed_notifications(staff_client):
    # given one pending and one dead Kafka delivery, two dead letters and a failed notification
    from messaging.models import DeadLetter, OutboxDelivery, OutboxEvent
    from notifications.models import Notification

    for booking_id, state in (("1", OutboxDelivery.State.PENDING), ("2", OutboxDelivery.State.DEAD)):
        event = OutboxEvent.objects.create(
            aggregate_type="booking",
            aggregate_id=booking_id,
            event_type="tour.booked",
            routing_key="tour.booked.standard",
            message_key=booking_id,
            payload={},
        )
        OutboxDelivery.objects.create(event=event, destination="kafka", state=state, aggregate_key=f"b:{booking_id}")
    DeadLetter.objects.create(transport="kafka", source="tour_events", reason="bad json")
    DeadLetter.objects.create(transport="rabbitmq", source="notifications.tour_events", reason="unknown type")
    Notification.objects.create(
        dedup_key="evt-1",
        event_type="tour.booked",
        booking_id="1",
        channel=Notification.Channel.SMS,
        recipient="+33600000000",
        recipient_masked="+336******00",
        language="en",
        status=Notification.Status.FAILED,
    )
    # when
    response = staff_client.get("/admin/ops/dashboard/")
    # then
    assert response.status_code == 200
    backlog = response.context["backlog"]
    assert backlog["kafka"]["pending"] == 1
    assert backlog["kafka"]["dead"] == 1
    assert backlog["rabbitmq"]["pending"] == 0
    assert response.context["dead_letters_open"] == 2
    assert {(r["transport"], r["count"]) for r in response.context["dead_letters"]} == {("kafka", 1), ("rabbitmq", 1)}
    assert response.context["notifications_failed"] == 1
    assert b"Operations dashboard" in response.content


def test_dashboard_is_for_staff_only(client):
    # given a signed-in user who is not staff
    user = get_user_model().objects.create_user("ops-customer", password="pw-ops-customer-1")
    client.force_login(user)
    # when
    response = client.get("/admin/ops/dashboard/")
    # then the admin login is asked for
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_admin_index_links_to_the_dashboard(staff_client):
    # when
    response = staff_client.get("/admin/")
    # then
    assert response.status_code == 200
    assert b'href="/admin/ops/dashboard/"' in response.content


def test_dashboard_shows_throughput_delivered_totals_kafka_lag_workers_and_tool_links(staff_client, settings):
    # given one event written just now, delivered to RabbitMQ only; a reported Kafka lag; a live worker
    from messaging.models import OutboxDelivery, OutboxEvent
    from ops.heartbeat import worker_heartbeat_clear, worker_heartbeat_write
    from tourapp import metrics

    event = OutboxEvent.objects.create(
        aggregate_type="booking",
        aggregate_id="7",
        event_type="tour.booked",
        routing_key="tour.booked.standard",
        message_key="7",
        payload={},
    )
    OutboxDelivery.objects.create(event=event, destination="rabbitmq", state="delivered", aggregate_key="b:7")
    OutboxDelivery.objects.create(event=event, destination="kafka", state="pending", aggregate_key="b:7")
    delivered_before = _metric("tourapp_outbox_delivered_total", destination="rabbitmq")
    metrics.OUTBOX_PUBLISHED.labels(destination="rabbitmq").inc(3)
    metrics.KAFKA_CONSUMER_LAG.labels(topic="tour_events.dash", partition="1").set(42)
    settings.FLOWER_URL = "http://127.0.0.1:5599/"
    worker_heartbeat_write(hostname="dash-worker@localhost")
    try:
        # when
        response = staff_client.get("/admin/ops/dashboard/")
    finally:
        worker_heartbeat_clear(hostname="dash-worker@localhost")
    # then
    assert response.status_code == 200
    assert response.context["throughput"]["rabbitmq"] == {"written": 1, "delivered": 1}
    assert response.context["throughput"]["kafka"] == {"written": 1, "delivered": 0}
    assert response.context["delivered_totals"]["rabbitmq"] == delivered_before + 3
    assert {"topic": "tour_events.dash", "partition": "1", "lag": 42} in response.context["kafka_lag"]
    assert "dash-worker@localhost" in response.context["workers"]["alive"]
    html = response.content.decode()
    assert 'href="http://127.0.0.1:5599/"' in html and "Flower" in html
    assert f'href="{settings.RABBITMQ_MANAGEMENT_URL}"' in html
    assert "tour_events.dash[1]: 42" in html


def test_dashboard_still_renders_and_says_so_when_the_worker_heartbeats_cannot_be_read(staff_client, monkeypatch):
    # given Redis failing for the heartbeat read
    from ops import heartbeat

    def redis_down() -> list[str]:
        raise ConnectionError("redis unreachable")

    monkeypatch.setattr(heartbeat, "workers_alive", redis_down)
    # when
    response = staff_client.get("/admin/ops/dashboard/")
    # then
    assert response.status_code == 200
    assert "unknown: ConnectionError: redis unreachable" in response.content.decode()


def _metric(name: str, **labels: str) -> float:
    from ops.selectors import metric_values

    return sum(value for got, value in metric_values(name)[name] if all(got.get(k) == v for k, v in labels.items()))
