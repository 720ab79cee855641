"""Each backing service, proven from Django's side against the real server."""

from __future__ import annotations

import uuid

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from kombu import Connection, Exchange, Queue


@pytest.mark.django_db
def test_postgresql_answers_a_query_through_the_orm_connection():
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        (version,) = cursor.fetchone()
    assert connection.vendor == "postgresql"
    assert version.startswith("PostgreSQL")


def test_redis_round_trips_a_value_through_django_redis():
    key = f"platform-test:{uuid.uuid4()}"
    cache.set(key, {"seats": 3}, timeout=30)
    assert cache.get(key) == {"seats": 3}
    assert cache.delete(key)
    assert cache.get(key) is None


def test_rabbitmq_confirms_a_publish_and_delivers_it_to_a_kombu_consumer():
    # given a durable exchange and an exclusive queue bound to it
    exchange = Exchange(f"{settings.EVENTS_EXCHANGE}.platform", type="topic", durable=False, auto_delete=True)
    queue = Queue(f"platform-{uuid.uuid4()}", exchange, routing_key="tour.#", exclusive=True)
    with Connection(settings.EVENTS_AMQP_URL, transport_options={"confirm_publish": True}) as conn:
        channel = conn.channel()
        queue(channel).declare()
        # when a message is published with publisher confirms (raises if the broker nacks)
        producer = conn.Producer(channel)
        producer.publish(
            {"hello": "rabbit"},
            exchange=exchange,
            routing_key="tour.booked.standard",
            mandatory=True,
            serializer="json",
        )
        # then a consumer receives it
        received = []
        with conn.Consumer(queue, callbacks=[lambda body, message: (received.append(body), message.ack())]):
            conn.drain_events(timeout=10)
        assert received == [{"hello": "rabbit"}]


def test_kafka_produces_with_acks_all_and_a_consumer_reads_it_back(kafka_topic):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    key = uuid.uuid4().hex.encode()
    producer = KafkaProducer(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, acks="all")
    metadata = producer.send(kafka_topic, key=key, value=b'{"hello": "kafka"}').get(timeout=30)
    producer.close()

    consumer = KafkaConsumer(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, enable_auto_commit=False, consumer_timeout_ms=10_000
    )
    partition = TopicPartition(kafka_topic, metadata.partition)
    consumer.assign([partition])
    consumer.seek(partition, metadata.offset)
    record = next(iter(consumer))
    consumer.close()
    assert (record.key, record.value) == (key, b'{"hello": "kafka"}')
