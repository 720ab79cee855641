"""Fault scenarios against the real processes: each prints one JSON line of figures and proves
lost = duplicates = overbooked = 0 (definitions in ``tests.e2e.figures``).

Every scenario books in three phases of the same size: before the fault, during it, after
recovery; drain time is measured from the recovery. Services are always restored in ``finally``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from messaging.models import OutboxDelivery
from tests.e2e.figures import AmqpTap, Figures, KafkaTap, collect_figures, wait_for_drain
from tests.e2e.harness import System, fire_bookings, services
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.fault, pytest.mark.django_db(transaction=True)]

PER_PHASE = 15
CLIENTS = 6
DRAIN_TIMEOUT = 150


def _run_scenario(
    name: str,
    system: System,
    *,
    tokens: list[str],
    departure_ids: list[int],
    amqp: AmqpTap,
    kafka: KafkaTap,
    fault: Callable[[], None],
    recover: Callable[[], None],
    fault_mid_phase: bool = False,
    while_down: Callable[[], None] | None = None,
) -> Figures:
    """Book before / during / after a fault; return the figures once drained (or at the deadline)."""
    statuses: dict[str, int] = {}
    fired = {"done": False}

    def fire(on_progress: Callable[[int], None] | None = None) -> None:
        burst = fire_bookings(
            system.base_url,
            tokens=tokens,
            departure_ids=departure_ids,
            count=PER_PHASE,
            clients=CLIENTS,
            on_progress=on_progress,
        )
        for status, n in burst.status_counts().items():
            statuses[str(status)] = statuses.get(str(status), 0) + n

    def mid(n: int) -> None:
        if n >= PER_PHASE // 2 and not fired["done"]:
            fired["done"] = True
            fault()

    try:
        fire(mid if fault_mid_phase else None)
        if not fault_mid_phase:
            fault()
        fire()
        if while_down is not None:
            while_down()
    finally:
        recover()
    recovered = time.monotonic()
    fire()
    figures = wait_for_drain(
        name,
        departure_ids=departure_ids,
        since=recovered,
        timeout=DRAIN_TIMEOUT,
        sends=system.sends_path,
        amqp=amqp,
        kafka=kafka,
    )
    figures.http_statuses = statuses
    figures.details["processes_alive"] = {n: p.alive() for n, p in system.processes.items()}
    print(figures.json_line())
    return figures


def _assert_nothing_lost(figures: Figures, *, allow_5xx: bool = False) -> None:
    assert figures.bookings_made > 0
    assert (figures.lost, figures.duplicates, figures.overbooked) == (0, 0, 0), figures.json_line()
    assert all(figures.details["processes_alive"].values()), figures.details["processes_alive"]
    if not allow_5xx:
        assert not any(s.startswith("5") or s == "0" for s in figures.http_statuses), figures.http_statuses
    assert figures.bookings_made == figures.http_statuses.get("201", 0) or allow_5xx


@pytest.fixture
def burst_setup(make_users, make_departures):  # type: ignore[no-untyped-def]
    return {"tokens": make_users(4), "departure_ids": make_departures(3)}


def test_rabbitmq_stopped_during_a_burst_then_started_loses_and_duplicates_nothing(
    system, burst_setup, amqp_tap, kafka_tap
):
    figures = _run_scenario(
        "rabbitmq_restart",
        system,
        **burst_setup,
        amqp=amqp_tap,
        kafka=kafka_tap,
        fault=lambda: services("stop", "rabbitmq"),
        recover=lambda: services("start", "rabbitmq"),
        # RabbitMQ is also the Celery broker: Kafka delivery must go on without it (relay loop).
        while_down=lambda: wait_until(
            lambda: not OutboxDelivery.objects.filter(destination="kafka", state="pending").exists(),
            timeout=30,
            what="every event delivered to Kafka while RabbitMQ is down",
        ),
    )
    _assert_nothing_lost(figures)


def test_kafka_stopped_during_a_burst_then_started_loses_and_duplicates_nothing(
    system, burst_setup, amqp_tap, kafka_tap
):
    figures = _run_scenario(
        "kafka_restart",
        system,
        **burst_setup,
        amqp=amqp_tap,
        kafka=kafka_tap,
        fault=lambda: services("stop", "kafka"),
        recover=lambda: services("start", "kafka"),
    )
    _assert_nothing_lost(figures)


def test_worker_sigkilled_mid_relay_and_mid_sending_then_restarted_loses_and_duplicates_nothing(
    system, burst_setup, amqp_tap, kafka_tap
):
    figures = _run_scenario(
        "worker_sigkill",
        system,
        **burst_setup,
        amqp=amqp_tap,
        kafka=kafka_tap,
        fault=lambda: system.kill("worker"),
        recover=lambda: system.start("worker"),
        fault_mid_phase=True,
    )
    _assert_nothing_lost(figures)


def test_kafka_consumer_sigkilled_mid_stream_then_restarted_loses_and_duplicates_nothing(
    system, burst_setup, amqp_tap, kafka_tap
):
    figures = _run_scenario(
        "kafka_consumer_sigkill",
        system,
        **burst_setup,
        amqp=amqp_tap,
        kafka=kafka_tap,
        fault=lambda: system.kill("kafka_consumer"),
        recover=lambda: system.start("kafka_consumer"),
        fault_mid_phase=True,
    )
    _assert_nothing_lost(figures)


def _flush_session_redis_keys(prefix: str) -> int:
    import redis
    from django.conf import settings

    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    return client.delete(*keys) if keys else 0


def test_redis_flushed_mid_stream_and_events_redelivered_cause_no_second_side_effect(
    system, burst_setup, amqp_tap, kafka_tap
):
    # given a burst during which the session's Redis keys (dedup fast path) are flushed
    figures = _run_scenario(
        "redis_flush",
        system,
        **burst_setup,
        amqp=amqp_tap,
        kafka=kafka_tap,
        fault=lambda: _flush_session_redis_keys(system.redis_prefix),
        recover=lambda: None,
        fault_mid_phase=True,
    )
    _assert_nothing_lost(figures)

    # when Redis is flushed again and every event of this burst is delivered a second time on both transports
    _flush_session_redis_keys(system.redis_prefix)
    ours = _event_ids_for(burst_setup["departure_ids"])
    # the payment events of the last bookings may still be on their way to the taps
    wait_until(
        lambda: all(amqp_tap.counts()[e] and kafka_tap.counts()[e] for e in ours),
        timeout=30,
        what="every event of the burst seen on both brokers",
    )
    from django.conf import settings
    from kafka import KafkaProducer
    from kombu import Exchange

    from messaging.amqp import events_connection

    with events_connection(transport_options={"confirm_publish": True}) as conn:
        producer = conn.Producer(conn.channel())
        for body, headers, routing_key in [amqp_tap.messages[e] for e in ours]:
            producer.publish(
                body,
                exchange=Exchange(system.exchange, type="topic", durable=True),
                routing_key=routing_key,
                headers=headers,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
            )
    kafka_producer = KafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, acks="all")
    for key, value, headers in [kafka_tap.records[e] for e in ours]:
        kafka_producer.send(system.topic, key=key, value=value, headers=headers)
    kafka_producer.flush(timeout=30)
    kafka_producer.close()

    # then both brokers carried the copies, and once the consumers caught up there is still one side effect
    wait_until(
        lambda: all(amqp_tap.counts()[e] >= 2 and kafka_tap.counts()[e] >= 2 for e in ours),
        timeout=30,
        what="the redelivered copies on both brokers",
    )
    _wait_consumers_idle(system)
    print(_assert_no_duplicate_for(3, burst_setup["departure_ids"], sends=system.sends_path).json_line())


def _event_ids_for(departure_ids: list[int]) -> list[str]:
    from bookings.models import Booking
    from messaging.models import OutboxEvent

    booking_ids = [str(i) for i in Booking.objects.filter(departure_id__in=departure_ids).values_list("id", flat=True)]
    return [str(e) for e in OutboxEvent.objects.filter(aggregate_id__in=booking_ids).values_list("event_id", flat=True)]


def _wait_consumers_idle(system: System) -> None:
    """Until the RabbitMQ handler queue is empty and the Kafka group has no lag."""
    from django.conf import settings
    from kafka import KafkaAdminClient, KafkaConsumer

    from messaging.amqp import events_connection

    queues = [
        f"{system.queue_prefix}notifications.tour_events",
        system.processes["worker"].env["CELERY_TASK_DEFAULT_QUEUE"],
    ]

    def rabbit_idle() -> bool:
        with events_connection() as conn:
            channel = conn.channel()
            return all(channel.queue_declare(queue=q, passive=True).message_count == 0 for q in queues)

    def kafka_idle() -> bool:
        admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
        consumer = KafkaConsumer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
        try:
            committed = admin.list_consumer_group_offsets(system.processes["worker"].env["KAFKA_CONSUMER_GROUP"])
            ours = {tp: meta.offset for tp, meta in committed.items() if tp.topic == system.topic}
            end = consumer.end_offsets(list(ours))
            return bool(ours) and all(ours[tp] >= end[tp] for tp in ours)
        finally:
            admin.close()
            consumer.close()

    # a broker just restarted may refuse a probe or two: those count as "not yet"
    wait_until(rabbit_idle, timeout=60, what="the notifications and task queues to be empty", ignoring=(Exception,))
    wait_until(kafka_idle, timeout=60, what="the kafka consumer group to have no lag", ignoring=(Exception,))


def _assert_no_duplicate_for(seconds: float, departure_ids: list[int], *, sends: Path) -> Figures:
    """Tasks already taken by the worker may still run: watch a short window, not one instant."""
    end = time.monotonic() + seconds
    while True:
        figures = collect_figures("redis_flush_redelivery", departure_ids=departure_ids, sends=sends)
        assert (figures.lost, figures.duplicates, figures.overbooked) == (0, 0, 0), figures.json_line()
        if time.monotonic() >= end:
            return figures
        time.sleep(0.5)


def test_postgresql_connections_terminated_mid_burst_leave_no_booking_without_its_event(
    system, burst_setup, amqp_tap, kafka_tap
):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (test_pid,) = cursor.fetchone()

    def terminate_other_backends() -> None:
        # Runs in a client thread too (its own connection): this test's main connection is spared.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> %s",
                [test_pid],
            )

    figures = _run_scenario(
        "postgres_terminate",
        system,
        **burst_setup,
        amqp=amqp_tap,
        kafka=kafka_tap,
        fault=terminate_other_backends,
        recover=terminate_other_backends,
        fault_mid_phase=True,
    )
    # a request whose connection died mid-transaction may get a 5xx; it then booked nothing
    _assert_nothing_lost(figures, allow_5xx=True)
    assert figures.details["bookings_without_event"] == figures.details["events_without_booking"] == 0
