"""/metrics: Prometheus text with HTTP metrics and the tourapp families, across processes."""

from __future__ import annotations

import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.ops.conftest import ROOT, subprocess_env

TOURAPP_FAMILIES = {
    "tourapp_outbox_delivered",
    "tourapp_outbox_failed",
    "tourapp_outbox_dead",
    "tourapp_outbox_backlog",
    "tourapp_outbox_oldest_pending_age_seconds",
    "tourapp_consumer_processed",
    "tourapp_consumer_duplicates",
    "tourapp_consumer_dead_lettered",
    "tourapp_kafka_consumer_lag",
    "tourapp_event_end_to_end_seconds",
}


def _scrape(client) -> dict[str, object]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def _sample(family, name: str, **labels: str) -> float | None:
    for sample in family.samples:
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    return None


@pytest.mark.django_db
def test_metrics_parse_and_carry_http_and_every_tourapp_family(client):
    # given one request went through the middleware
    client.get("/health/live")
    # when
    families = _scrape(client)
    # then
    assert not TOURAPP_FAMILIES - set(families)
    assert "django_http_requests_total_by_method" in families
    assert "django_http_requests_latency_seconds_by_view_method" in families
    assert _sample(
        families["django_http_requests_total_by_method"], "django_http_requests_total_by_method_total", method="GET"
    )


@pytest.mark.django_db
def test_outbox_backlog_gauges_are_read_from_the_outbox_at_scrape_time(client):
    # given two pending RabbitMQ deliveries and none for Kafka
    from messaging.models import OutboxDelivery, OutboxEvent

    for booking_id in ("7", "8"):
        event = OutboxEvent.objects.create(
            aggregate_type="booking",
            aggregate_id=booking_id,
            event_type="tour.booked",
            routing_key="tour.booked.standard",
            message_key=booking_id,
            payload={},
        )
        OutboxDelivery.objects.create(event=event, destination="rabbitmq", aggregate_key=f"booking:{booking_id}")
    # when
    families = _scrape(client)
    # then
    backlog = families["tourapp_outbox_backlog"]
    assert _sample(backlog, "tourapp_outbox_backlog", destination="rabbitmq") == 2
    assert _sample(backlog, "tourapp_outbox_backlog", destination="kafka") == 0
    age = _sample(
        families["tourapp_outbox_oldest_pending_age_seconds"],
        "tourapp_outbox_oldest_pending_age_seconds",
        destination="rabbitmq",
    )
    assert age is not None and age >= 0


@pytest.mark.django_db
def test_counters_incremented_in_another_process_show_in_multiprocess_mode(client, settings, tmp_path):
    # given a separate process (as the Kafka consumer is) that counted two processed events
    code = (
        "from tourapp import metrics\n"
        "metrics.CONSUMER_PROCESSED.labels(handler='availability', transport='kafka').inc(2)\n"
        "metrics.END_TO_END_LATENCY.labels(handler='availability').observe(0.2)\n"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=subprocess_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path)),
        check=True,
        timeout=60,
    )
    settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path)
    # when the web process scrapes in multiprocess mode
    families = _scrape(client)
    # then the other process's samples are there
    processed = families["tourapp_consumer_processed"]
    assert _sample(processed, "tourapp_consumer_processed_total", handler="availability", transport="kafka") == 2
    latency = families["tourapp_event_end_to_end_seconds"]
    assert _sample(latency, "tourapp_event_end_to_end_seconds_count", handler="availability") == 1


# --- access: an allow-list of client networks (loopback by default) or a bearer token
OUTSIDER = "203.0.113.7"


@pytest.mark.django_db
def test_metrics_refuse_a_client_outside_the_allowed_networks(client):
    # when
    response = client.get("/metrics", REMOTE_ADDR=OUTSIDER)
    # then
    assert response.status_code == 403
    assert b"tourapp_" not in response.content


@pytest.mark.django_db
def test_metrics_answer_loopback_by_default_and_any_client_in_a_configured_network(client, settings):
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    # given
    settings.METRICS_ALLOWED_CIDRS = ["10.0.0.0/8"]
    # then
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


@pytest.mark.django_db
def test_metrics_answer_an_outside_client_with_the_bearer_token_only(client, settings):
    # given
    settings.METRICS_TOKEN = "scrape-secret-123"
    # when
    with_token = client.get("/metrics", REMOTE_ADDR=OUTSIDER, HTTP_AUTHORIZATION="Bearer scrape-secret-123")
    wrong_token = client.get("/metrics", REMOTE_ADDR=OUTSIDER, HTTP_AUTHORIZATION="Bearer scrape-secret-124")
    # then
    assert with_token.status_code == 200
    assert b"tourapp_outbox_backlog" in with_token.content
    assert wrong_token.status_code == 403


@pytest.mark.django_db
def test_an_empty_metrics_token_never_authorises(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", REMOTE_ADDR=OUTSIDER, HTTP_AUTHORIZATION="Bearer ").status_code == 403
