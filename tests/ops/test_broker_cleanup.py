"""The end-of-session cleanup deletes a run's queues, exchanges, topics and groups, and those of dead
earlier runs, but never those of a run that is still alive.

Fake run ids are used ("this run" and the others), never the session's own: deleting the session's
names here would pull them from under the tests that follow. The RabbitMQ listing is narrowed to
these fake names, so other test sessions sharing the broker are never touched by this test.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import pytest
from django.conf import settings

from messaging.amqp import events_connection
from tests.ops import broker_cleanup
from tests.ops.broker_cleanup import RabbitAdmin, Report


class _ScopedAdmin(RabbitAdmin):
    """The real management API, listing only the names made by one test."""

    def __init__(self, runs: set[str]) -> None:
        super().__init__(broker_url=settings.EVENTS_AMQP_URL, management_url=settings.RABBITMQ_MANAGEMENT_URL)
        self.runs = runs

    def _mine(self, name: str) -> bool:
        return any(run in name for run in self.runs)

    def queues(self):  # type: ignore[no-untyped-def]
        return [queue for queue in super().queues() if self._mine(queue["name"])]

    def exchanges(self) -> list[str]:
        return [name for name in super().exchanges() if self._mine(name)]


def _run_id() -> str:
    return uuid.uuid4().hex[:8]


def _declare(*, run: str) -> list[str]:
    """The RabbitMQ names a test session makes, with a message in the main queue."""
    queues = [
        f"test.{run}.notifications.tour_events",
        f"test.{run}.notifications.tour_events.dlq",
        f"celery.test.{run}",
    ]
    with events_connection() as connection:
        channel = connection.channel()
        channel.exchange_declare(f"tour_events.test.{run}", "topic", durable=True)
        channel.exchange_declare(f"tour_events.test.{run}.dlx", "direct", durable=True)
        for name in queues:
            channel.queue_declare(name, durable=True, auto_delete=False)
        channel.basic_publish(channel.prepare_message(b"{}"), exchange="", routing_key=queues[0])
    return queues


@pytest.fixture
def runs() -> Iterator[dict[str, str]]:
    names = {"this": _run_id(), "dead": _run_id(), "alive": _run_id()}
    yield names
    admin = _ScopedAdmin(set(names.values()))  # whatever a failed test left
    with contextlib.suppress(Exception):
        for queue in admin.queues():
            admin.delete("queues", queue["name"])
        for name in admin.exchanges():
            admin.delete("exchanges", name)


def test_rabbitmq_cleanup_deletes_this_run_and_dead_runs_but_keeps_a_live_one(runs):
    # given this run's, a dead run's and a live (registered) run's queues and exchanges
    for run in runs.values():
        _declare(run=run)
    admin = _ScopedAdmin(set(runs.values()))
    report = Report()

    # when cleaning up, with every idle queue counted as stale
    _active, dead = broker_cleanup.rabbitmq_cleanup(
        admin, run=runs["this"], live_runs={runs["alive"]}, report=report, stale_after=0
    )

    # then only the live run's names remain, and nothing of this run is left
    remaining = {q["name"] for q in admin.queues()} | set(admin.exchanges())
    assert remaining and all(runs["alive"] in name for name in remaining)
    assert f"queue test.{runs['this']}.notifications.tour_events" in report.deleted
    assert f"exchange tour_events.test.{runs['dead']}.dlx" in report.deleted
    assert dead == {runs["dead"]}
    assert broker_cleanup.rabbitmq_left(admin, run=runs["this"]) == []


def test_rabbitmq_cleanup_keeps_another_run_that_was_active_recently(runs):
    # given an unregistered run whose queue was just used (a session started before registration existed)
    _declare(run=runs["alive"])
    admin = _ScopedAdmin(set(runs.values()))

    # when cleaning up with the default staleness window
    active, dead = broker_cleanup.rabbitmq_cleanup(admin, run=runs["this"], live_runs=set(), report=Report())

    # then it is kept
    assert runs["alive"] in active and not dead
    assert len(admin.queues()) == 3


def test_kafka_cleanup_deletes_this_run_and_dead_runs_topics_and_groups_only(runs):
    # given topics for this run, a dead run and a live one, and a committed group for this run
    from kafka import KafkaAdminClient, KafkaConsumer, OffsetAndMetadata, TopicPartition

    from tests.support.kafka import kafka_topics_create, kafka_topics_delete

    topics = {name: f"tour_events.test.{run}" for name, run in runs.items()}
    group = f"tourapp.test.{runs['this']}"
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
    try:
        for topic in topics.values():
            kafka_topics_create(topic, partitions=1)
        consumer = KafkaConsumer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, group_id=group)
        partition = TopicPartition(topics["this"], 0)
        consumer.assign([partition])
        consumer.commit({partition: OffsetAndMetadata(0, "", -1)})
        consumer.close()
        assert group in {g for g, _ in admin.list_consumer_groups()}
        report = Report()

        # when (the dead run is known dead from RabbitMQ; Kafka-only leftovers are not touched)
        left = broker_cleanup.kafka_cleanup(
            bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
            run=runs["this"],
            keep={runs["alive"]},
            kafka_only_ok=False,
            rabbit_runs={runs["dead"]},
            report=report,
        )

        # then
        existing = set(admin.list_topics())
        assert left == []
        assert topics["this"] not in existing and topics["dead"] not in existing
        assert topics["alive"] in existing
        assert group not in {g for g, _ in admin.list_consumer_groups()}
        assert f"group {group}" in report.deleted
    finally:
        admin.close()
        with contextlib.suppress(Exception):
            kafka_topics_delete(*topics.values())


def test_this_session_is_registered_as_alive_so_other_sessions_keep_its_names():
    run = broker_cleanup.session_run()
    assert run and os.environ["EVENTS_QUEUE_PREFIX"] == f"test.{run}."
    assert broker_cleanup.live_registered_runs().get(run) == os.getpid()
