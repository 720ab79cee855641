"""Liveness and readiness against the real PostgreSQL, Redis, RabbitMQ, Kafka and a real worker."""

from __future__ import annotations

import subprocess
import time
import uuid
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from tests.ops.conftest import ROOT, WorkerProcess, stop_process, worker_start, worker_wait_alive

# The readiness view probes in parallel threads with their own DB connections: they must see
# committed rows, hence transactional tests.
pytestmark = pytest.mark.django_db(transaction=True)


def _ready(client: Client) -> tuple[int, dict, float]:
    started = time.monotonic()
    response = client.get("/health/ready")
    return response.status_code, response.json(), time.monotonic() - started


def test_liveness_answers_ok_without_touching_any_dependency(client, django_assert_num_queries):
    # when
    with django_assert_num_queries(0):
        response = client.get("/health/live")
    # then
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readiness_is_200_and_names_every_check_when_all_dependencies_answer(
    client, kafka_topic, celery_worker_process: WorkerProcess
):
    # given every service up, the session's Kafka topic created and a live worker
    # when
    status, body, elapsed = _ready(client)
    # then
    assert status == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"PostgreSQL", "Redis", "RabbitMQ", "Kafka", "CeleryWorker", "Outbox"}
    assert all(check["ok"] for check in body["checks"].values())
    assert elapsed < 2


def test_readiness_names_the_celery_worker_once_the_last_worker_stopped(client, kafka_topic, tmp_path):
    # given a worker that is alive (its own process, so stopping it leaves other tests alone)
    from ops.heartbeat import workers_alive

    hostname = f"ops-stop-{uuid.uuid4().hex[:8]}@localhost"
    proc = worker_start(hostname=hostname, log_path=tmp_path / "worker.log")
    try:
        worker_wait_alive(proc, hostname=hostname, log_path=tmp_path / "worker.log")
        # when it shuts down
        stop_process(proc)
    finally:
        stop_process(proc)
    # then its heartbeat is gone at once, and readiness says so when it was the only worker
    assert hostname not in workers_alive()
    if not workers_alive():  # other workers (another test run, `make run`) may share the key prefix
        status, body, _ = _ready(client)
        assert status == 503
        assert not body["checks"]["CeleryWorker"]["ok"]
        assert "no Celery worker heartbeat" in body["checks"]["CeleryWorker"]["detail"]


def test_readiness_names_the_outbox_when_a_pending_delivery_is_older_than_the_threshold(
    client, settings, kafka_topic, celery_worker_process: WorkerProcess
):
    # given a pending Kafka delivery written 10 minutes ago, with a 60 s threshold
    from messaging.models import OutboxDelivery, OutboxEvent

    settings.OUTBOX_HEALTH_MAX_AGE_SECONDS = 60
    event = OutboxEvent.objects.create(
        aggregate_type="booking",
        aggregate_id="1",
        event_type="tour.booked",
        routing_key="tour.booked.standard",
        message_key="1",
        payload={},
    )
    delivery = OutboxDelivery.objects.create(event=event, destination="kafka", aggregate_key="booking:1")
    OutboxDelivery.objects.filter(pk=delivery.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    OutboxEvent.objects.filter(pk=event.pk).update(created_at=timezone.now() - timedelta(minutes=10))
    # when
    status, body, _ = _ready(client)
    # then
    assert status == 503
    outbox = body["checks"]["Outbox"]
    assert not outbox["ok"]
    assert "kafka" in outbox["detail"]
    assert "limit 60 s" in outbox["detail"]
    assert body["checks"]["PostgreSQL"]["ok"]


@pytest.mark.fault
def test_readiness_is_503_naming_rabbitmq_while_it_is_down_and_recovers_after(client, kafka_topic):
    # given RabbitMQ stopped
    subprocess.run(["bash", str(ROOT / "scripts/services"), "stop", "rabbitmq"], check=True, timeout=120)
    try:
        # when
        status, body, elapsed = _ready(client)
    finally:
        subprocess.run(["bash", str(ROOT / "scripts/services"), "start", "rabbitmq"], check=True, timeout=180)
    # then readiness names RabbitMQ, keeps the others green, and answers fast
    assert status == 503
    assert body["status"] == "unavailable"
    assert not body["checks"]["RabbitMQ"]["ok"]
    assert body["checks"]["RabbitMQ"]["detail"]
    assert body["checks"]["PostgreSQL"]["ok"]
    assert body["checks"]["Redis"]["ok"]
    assert body["checks"]["Kafka"]["ok"]
    assert elapsed < 2
    # and once it is back the RabbitMQ check is green again (nothing cached the outage)
    assert _ready(client)[1]["checks"]["RabbitMQ"]["ok"]
