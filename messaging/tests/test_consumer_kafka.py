"""Kafka consumer against the real broker: batches, offsets, DLQ topic (and its failures), both
transports, SIGTERM."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.core import mail

from availability.models import DepartureAvailability
from availability.tests.factories import DepartureFactory
from messaging.consumers.kafka import KafkaEventConsumer, kafka_consume
from messaging.consumers.rabbitmq_topology import rabbitmq_topology_setup
from messaging.consumers.rabbitmq_worker import rabbitmq_consume
from messaging.models import DeadLetter
from messaging.tests.consumer_support import (
    amqp_publish,
    booking_payload,
    foreign_payload,
    kafka_produce,
    kafka_read_all,
    wire_headers,
)
from notifications.models import Notification
from tests.support.database import subprocess_database_url
from tests.support.kafka import kafka_topics_create
from tests.support.waiting import wait_until

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


def _committed(group: str, topic: str) -> dict[int, int]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
    try:
        offsets = admin.list_consumer_group_offsets(group)
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


def test_kafka_consumer_applies_a_batch_once_and_commits_its_offsets(fresh_topic, settings) -> None:
    # given: 10 bookings on 2 departures, each record delivered twice, plus cancellations
    settings.EVENT_HANDLER_ROUTES = {"notifications": "rabbitmq", "availability": "kafka"}
    first, second = DepartureFactory(capacity=50), DepartureFactory(capacity=50)
    booked = [booking_payload(departureId=d.pk, seats=2) for d in (first, second) for _ in range(5)]
    cancelled = [booking_payload(eventType="tour.cancelled", departureId=first.pk, seats=2) for _ in range(2)]
    records = [(p, wire_headers(p)) for p in booked + booked + cancelled]
    kafka_produce(fresh_topic, records)
    # when
    stats = kafka_consume(until_caught_up=True, idle_timeout=20)
    # then
    assert stats.records == 22
    assert (stats.applied, stats.duplicates) == (12, 10)
    assert DepartureAvailability.objects.get(pk=first.pk).seats_booked == 10 - 4
    assert DepartureAvailability.objects.get(pk=second.pk).seats_left == 50 - 10
    assert sum(_committed(settings.KAFKA_CONSUMER_GROUP, fresh_topic).values()) == 22
    # and a restart of the same group has nothing left to do
    again = KafkaEventConsumer(idle_timeout=1.5).run()
    assert again.records == 0


def test_kafka_consumer_sends_poison_records_to_the_dlq_topic_and_keeps_going(fresh_topic, settings) -> None:
    # given: valid records around malformed, unknown, missing-field, mistyped, oversized and unknown-departure ones
    settings.EVENT_HANDLER_ROUTES = {"notifications": "rabbitmq", "availability": "kafka"}
    settings.EVENTS_MAX_BODY_BYTES = 4096
    settings.KAFKA_HANDLER_MAX_ATTEMPTS = 2
    departure = DepartureFactory(capacity=10)
    valid = [booking_payload(departureId=departure.pk, seats=1) for _ in range(2)]
    bad = [
        (b"{oops", {}),
        (booking_payload(eventType="tour.exploded", departureId=departure.pk), {}),
        (booking_payload(departureId=None), {}),
        (booking_payload(seats="two", departureId=departure.pk), {}),
        (booking_payload(departureId=departure.pk, tourName="x" * 5000), {}),
        (booking_payload(departureId=987654321), {"correlationId": "cid-poison"}),
    ]
    kafka_produce(fresh_topic, [(valid[0], wire_headers(valid[0])), *bad, (valid[1], wire_headers(valid[1]))])
    # when
    stats = kafka_consume(until_caught_up=True, idle_timeout=20)
    # then
    assert (stats.records, stats.applied, stats.dead_lettered) == (8, 2, 6)
    assert DepartureAvailability.objects.get(pk=departure.pk).seats_booked == 2
    dlq = kafka_read_all(settings.KAFKA_DLQ_TOPIC, expected=6)
    headers = [{k: v.decode() for k, v in record.headers} for record in dlq]
    assert all(h["source-topic"] == fresh_topic and h["source-offset"].isdigit() for h in headers)
    assert all("source-partition" in h for h in headers)
    errors = " | ".join(h["error"] for h in headers)
    for expected in (
        "malformed JSON",
        "unknown event type",
        "departure_id",
        "seats must be",
        "too large",
        "unknown departure",
    ):
        assert expected in errors
    rows = DeadLetter.objects.filter(transport="kafka")
    assert rows.count() == 6
    assert rows.get(reason__contains="unknown departure").correlation_id == "cid-poison"
    assert sum(_committed(settings.KAFKA_CONSUMER_GROUP, fresh_topic).values()) == 8


def test_kafka_consumer_logs_each_duplicate_once_and_no_info_line_per_applied_event(
    fresh_topic, settings, caplog
) -> None:
    # given: one record delivered three times to the availability handler
    settings.EVENT_HANDLER_ROUTES = {"notifications": "rabbitmq", "availability": "kafka"}
    departure = DepartureFactory(capacity=10)
    payload = booking_payload(departureId=departure.pk, seats=1)
    kafka_produce(fresh_topic, [(payload, wire_headers(payload, "cid-dup"))] * 3)
    caplog.set_level(logging.INFO)
    # when
    stats = kafka_consume(until_caught_up=True, idle_timeout=20)
    # then: applied once; the consumer's INFO lines about it are one per duplicate, as on RabbitMQ
    assert (stats.applied, stats.duplicates) == (1, 2)
    about_it = [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("messaging.") and getattr(r, "correlation_id", None) == "cid-dup"
    ]
    assert about_it == [f"skipped duplicate event {payload['eventId']}"] * 2


def test_both_transports_at_once_still_send_one_email_one_sms_and_change_availability_once(
    fresh_topic, amqp_env, celery_tasks, settings
) -> None:
    # given: every handler fed by both transports; the same events on both, twice each
    settings.EVENT_HANDLER_ROUTES = {"notifications": "both", "availability": "both"}
    departure = DepartureFactory(capacity=30)
    ours = booking_payload(departureId=departure.pk, seats=3)
    foreign = foreign_payload(departureId=departure.pk, seats=2, bookingId=4321)
    messages = [(ours, wire_headers(ours)), (foreign, {"eventType": "tour.booked"})] * 2
    rabbitmq_topology_setup()
    amqp_publish(messages)
    kafka_produce(fresh_topic, messages)
    # when
    rabbitmq_consume(max_messages=8, idle_timeout=2)
    kafka_consume(until_caught_up=True, idle_timeout=20)
    celery_tasks(expected=2)
    # then
    assert len(mail.outbox) == 2
    assert Notification.objects.filter(channel="sms", status="sent").count() == 2
    assert DepartureAvailability.objects.get(pk=departure.pk).seats_booked == 5


def test_run_kafka_consumer_command_finishes_commits_and_exits_on_sigterm(fresh_topic, settings, tmp_path) -> None:
    # given: a running command restricted to the availability handler
    departure = DepartureFactory(capacity=40)
    env = {
        **os.environ,
        "DATABASE_URL": subprocess_database_url(),
        "KAFKA_DLQ_TOPIC": settings.KAFKA_DLQ_TOPIC,
        "KAFKA_PROGRESS_LOG_SECONDS": "0.5",
        "LOG_FORMAT": "json",
    }
    group = f"{settings.KAFKA_CONSUMER_GROUP}.cmd"
    argv = [sys.executable, "manage.py", "run_kafka_consumer", "--group", group, "--topic", fresh_topic,
            "--handlers", "availability"]  # fmt: skip
    log_path = tmp_path / "consumer.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        payloads = [booking_payload(departureId=departure.pk, seats=1, bookingId=n) for n in range(6)]
        kafka_produce(fresh_topic, [(p, wire_headers(p, f"cid-cmd-{n}")) for n, p in enumerate(payloads)])
        wait_until(
            lambda: DepartureAvailability.objects.filter(pk=departure.pk, seats_booked=6).exists(),
            timeout=60,
            what="the command to apply the events",
            interval=0.2,
        )
        # when
        os.killpg(process.pid, signal.SIGTERM)
        returncode = process.wait(timeout=20)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    # then: a clean exit, every offset committed, progress and lag in the log
    assert returncode == 0
    assert sum(_committed(group, fresh_topic).values()) == 6
    log = log_path.read_text()
    assert "kafka consumer progress" in log and "lag" in log
    stats = json.loads(log.strip().splitlines()[-1])
    assert stats["applied"] == 6


def test_consumer_recreates_its_kafka_client_when_idle_polls_busy_wait(fresh_topic):
    # given a consumer whose idle polls burn their whole wait on CPU (kafka-python after a broker restart)
    consumer = KafkaEventConsumer(topic=fresh_topic, group=f"spin-{fresh_topic}")
    stuck_client = consumer.consumer
    spins = 0
    try:
        # when that happens on nine polls in a row, then nothing is done yet
        for _ in range(9):
            spins = consumer._spin_check({}, 0.5, 0.49, spins)
        assert consumer.consumer is stuck_client
        # when a real wait (a poll that slept) comes between, the count starts over
        assert consumer._spin_check({}, 0.5, 0.01, spins) == 0
        for _ in range(10):
            spins = consumer._spin_check({}, 0.5, 0.49, spins)
        # then the tenth spinning poll in a row replaces the client, subscribed to the same topic
        assert consumer.consumer is not stuck_client
        assert consumer.consumer.subscription() == {fresh_topic}
    finally:
        consumer.consumer.close(autocommit=False)


def _dlq_failures(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("dead-letter produce")]


def _in_background(work) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, errors


def test_a_dlq_topic_that_cannot_take_records_is_retried_with_backoff_and_the_consumer_survives(
    fresh_topic, settings, caplog
) -> None:
    # given: a poison record and a valid one; the DLQ topic does not exist yet (the broker does
    # not auto-create topics), so every produce to it fails until it is created
    settings.EVENT_HANDLER_ROUTES = {"notifications": "rabbitmq", "availability": "kafka"}
    settings.KAFKA_DLQ_TOPIC = f"{fresh_topic}.late-dlq"
    settings.KAFKA_DLQ_SEND_TIMEOUT_SECONDS = 1.0
    caplog.set_level(logging.WARNING, logger="messaging.consumers.kafka_dead_letters")
    departure = DepartureFactory(capacity=10)
    valid = booking_payload(departureId=departure.pk, seats=1)
    kafka_produce(fresh_topic, [(b"{oops", {}), (valid, wire_headers(valid))])

    def create_the_dlq_topic_after_two_failed_attempts() -> None:
        try:
            wait_until(lambda: len(_dlq_failures(caplog)) >= 2, timeout=60, what="two failed DLQ attempts")
        finally:
            kafka_topics_create(settings.KAFKA_DLQ_TOPIC, partitions=1)

    helper, errors = _in_background(create_the_dlq_topic_after_two_failed_attempts)
    try:
        # when
        stats = kafka_consume(until_caught_up=True, idle_timeout=30)
    finally:
        helper.join(timeout=70)
    # then: the consumer kept retrying (logged, not dead), dead-lettered the record once the
    # topic existed, applied the valid record and committed both offsets
    assert errors == []
    assert len(_dlq_failures(caplog)) >= 2
    assert (stats.records, stats.applied, stats.dead_lettered) == (2, 1, 1)
    dlq = kafka_read_all(settings.KAFKA_DLQ_TOPIC, expected=1)
    assert [record.value for record in dlq] == [b"{oops"]
    assert DeadLetter.objects.filter(transport="kafka").count() == 1
    assert DepartureAvailability.objects.get(pk=departure.pk).seats_booked == 1
    assert sum(_committed(settings.KAFKA_CONSUMER_GROUP, fresh_topic).values()) == 2


def test_stopping_while_the_dlq_cannot_be_reached_leaves_the_poison_record_uncommitted(
    fresh_topic, settings, caplog
) -> None:
    # given: a poison record and a DLQ topic that does not exist
    settings.KAFKA_DLQ_TOPIC = f"{fresh_topic}.missing-dlq"
    settings.KAFKA_DLQ_SEND_TIMEOUT_SECONDS = 1.0
    caplog.set_level(logging.WARNING, logger="messaging.consumers.kafka_dead_letters")
    kafka_produce(fresh_topic, [(b"{oops", {})])
    consumer = KafkaEventConsumer(idle_timeout=30)

    def stop_after_a_failed_attempt() -> None:
        try:
            wait_until(lambda: _dlq_failures(caplog), timeout=60, what="a failed DLQ attempt")
        finally:
            consumer.stop()

    helper, errors = _in_background(stop_after_a_failed_attempt)
    # when
    try:
        stats = consumer.run()
    finally:
        helper.join(timeout=70)
    # then: a clean stop, nothing dead-lettered, and the record's offset not committed (it comes back)
    assert errors == []
    assert (stats.records, stats.dead_lettered) == (0, 0)
    assert not DeadLetter.objects.filter(transport="kafka").exists()
    assert sum(_committed(settings.KAFKA_CONSUMER_GROUP, fresh_topic).values()) == 0
