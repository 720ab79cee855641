"""Publishers on the real brokers: connection reuse and recovery, per-message failures."""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from bookings.event_schema import TOUR_BOOKED
from messaging.models import OutboxDelivery
from messaging.publishers import kafka as kafka_publishers
from messaging.publishers.base import OutboundMessage
from messaging.publishers.kafka import KafkaPublisher
from messaging.publishers.kafka_batch_sender import KAFKA_BATCH_SENDER_GATE
from messaging.publishers.rabbitmq import AmqpPublisher
from messaging.publishers.rabbitmq_frames import AMQP_FRAME_WRITER_GATE
from messaging.relay.batch import outbox_relay_batch
from messaging.services import outbox_event_record
from messaging.tests.conftest import KAFKA, fake_booking_ids, outbound_message, record_booking_events


def _readable(message: OutboundMessage) -> OutboundMessage:
    """The message with the body and headers the Kafka reader identifies records by."""
    return message._replace(
        body=json.dumps(
            {"eventId": message.event_id, "bookingId": message.message_key, "eventType": TOUR_BOOKED}
        ).encode(),
        headers={"eventType": TOUR_BOOKED, "eventId": message.event_id, "correlationId": f"c-{message.message_key}"},
    )


@pytest.mark.parametrize("frame_writer", [True, False], ids=["frame-writer", "basic-publish"])
def test_amqp_publisher_confirms_a_batch_and_reuses_its_connection(amqp_reader, monkeypatch, frame_writer):
    # given a queue bound to the exchange and a publisher (py-amqp's frame writer of the pinned
    # release, or the public basic_publish)
    if not frame_writer:
        monkeypatch.setattr(AMQP_FRAME_WRITER_GATE, "installed", "0.0.0-unvetted")
    reader = amqp_reader()
    publisher = AmqpPublisher()
    try:
        # when two batches are published
        first = publisher.publish([outbound_message(n) for n in range(1, 51)])
        connection = publisher._conn
        second = publisher.publish([outbound_message(n) for n in range(51, 101)])

        # then every message is confirmed, over one connection
        assert sorted(first.delivered) == list(range(1, 51)) and not first.failed
        assert sorted(second.delivered) == list(range(51, 101)) and not second.failed
        assert publisher._conn is connection
        assert len(reader.read(count=100)) == 100
    finally:
        publisher.close()


@pytest.mark.parametrize("frame_writer", [True, False], ids=["frame-writer", "basic-publish"])
def test_amqp_publisher_reconnects_when_its_idle_connection_was_dropped(amqp_reader, monkeypatch, frame_writer):
    # given a publisher whose connection the broker side has closed since the last batch
    if not frame_writer:
        monkeypatch.setattr(AMQP_FRAME_WRITER_GATE, "installed", "0.0.0-unvetted")
    reader = amqp_reader()
    publisher = AmqpPublisher()
    try:
        publisher.publish([outbound_message(1)])
        publisher._conn.connection.transport.sock.close()

        # when the next batch is published
        outcome = publisher.publish([outbound_message(2), outbound_message(3)])

        # then it went out on a fresh connection, not reported as an outage
        assert outcome.unavailable is None
        assert sorted(outcome.delivered) == [2, 3]
        assert [m.event_id for m in reader.read(count=3)][-2:] == [
            outbound_message(2).event_id,
            outbound_message(3).event_id,
        ]
    finally:
        publisher.close()


@pytest.mark.django_db
def test_kafka_refusing_one_oversized_message_fails_only_that_delivery(kafka_topic):
    # given a normal event and one larger than the producer's max request size
    (normal,) = record_booking_events(fake_booking_ids(1))
    with transaction.atomic():
        huge = outbox_event_record(
            aggregate_type="booking",
            aggregate_id=fake_booking_ids(1)[0],
            event_type=TOUR_BOOKED,
            routing_key="tour.booked.standard",
            payload={"padding": "x" * (5 * 1024 * 1024)},
        )

    # when the Kafka batch runs
    result = outbox_relay_batch(destination=KAFKA)

    # then the normal one is delivered; the huge one counts a failed attempt with the reason
    assert (result.delivered, result.failed, result.unavailable) == (1, 1, False)
    assert OutboxDelivery.objects.get(event=normal, destination=KAFKA).state == "delivered"
    failed = OutboxDelivery.objects.get(event=huge, destination=KAFKA)
    assert (failed.state, failed.attempts) == ("pending", 1)
    assert "MessageSizeTooLarge" in failed.last_error


@pytest.mark.parametrize("batch_sender", [True, False], ids=["batch-sender", "plain-send"])
def test_kafka_publisher_puts_each_record_on_its_key_partition_with_body_and_headers(
    kafka_topic, kafka_reader, monkeypatch, batch_sender
):
    # given a publisher (the batch sender of the pinned kafka-python, or plain send()) and 40 bookings
    from kafka.partitioner.default import murmur2

    if not batch_sender:
        monkeypatch.setattr(KAFKA_BATCH_SENDER_GATE, "installed", "0.0.0-unvetted")
    reader = kafka_reader()
    publisher = KafkaPublisher(topic=kafka_topic)
    messages = [_readable(m) for m in map(outbound_message, range(1, 41))]
    try:
        # when one batch of 40 keys is published
        outcome = publisher.publish(messages)
    finally:
        publisher.close()

    # then every record is confirmed and sits on the partition kafka-python's default partitioner
    # gives its key (Java's murmur2 too), so each booking's events stay in one partition, in order
    assert (sorted(outcome.delivered), outcome.failed, outcome.unavailable) == (list(range(1, 41)), {}, None)
    received = reader.read(event_ids={m.event_id for m in messages})
    partitions = len(reader.partitions)
    assert len(received) == 40
    for record in received:
        key = record.aggregate_id.encode()
        assert record.properties["partition"] == (murmur2(key) & 0x7FFFFFFF) % partitions
        assert record.body["bookingId"] == record.aggregate_id
        assert record.headers == {
            "eventType": TOUR_BOOKED,
            "eventId": record.body["eventId"],
            "correlationId": f"c-{record.aggregate_id}",
        }
    assert len({r.properties["partition"] for r in received}) == partitions


@pytest.mark.parametrize("batch_sender", [True, False], ids=["batch-sender", "plain-send"])
def test_a_programming_error_on_one_kafka_record_fails_that_record_instead_of_faking_an_outage(
    kafka_topic, kafka_reader, monkeypatch, batch_sender
):
    # given: a publisher whose send raises an AssertionError (a bug, not the broker) for record 2 only
    if not batch_sender:
        monkeypatch.setattr(KAFKA_BATCH_SENDER_GATE, "installed", "0.0.0-unvetted")
    real_batch_sender = kafka_publishers.kafka_batch_sender

    def buggy_batch_sender(*, producer, topic):
        send, batch_end = real_batch_sender(producer=producer, topic=topic)

        def send_or_assert(key, value, headers):
            if key == b"2":
                raise AssertionError("value must be bytes")
            return send(key, value, headers)

        return send_or_assert, batch_end

    monkeypatch.setattr(kafka_publishers, "kafka_batch_sender", buggy_batch_sender)
    reader = kafka_reader()
    publisher = KafkaPublisher(topic=kafka_topic)
    messages = [_readable(m) for m in map(outbound_message, (1, 2, 3))]
    try:
        # when
        outcome = publisher.publish(messages)
    finally:
        publisher.close()

    # then: the broker is not reported unavailable; record 2 failed (an attempt counted), 1 and 3 went out
    assert outcome.unavailable is None
    assert sorted(outcome.delivered) == [1, 3]
    assert outcome.failed == {2: "kafka: AssertionError: value must be bytes"}
    assert len(reader.read(event_ids={messages[0].event_id, messages[2].event_id})) == 2


@pytest.mark.parametrize("batch_sender", [True, False], ids=["batch-sender", "plain-send"])
def test_a_closed_kafka_producer_is_unavailable_not_a_failure_and_the_next_batch_reconnects(
    kafka_topic, monkeypatch, batch_sender
):
    # given: a publisher whose producer was closed under it (kafka-python then asserts in send())
    if not batch_sender:
        monkeypatch.setattr(KAFKA_BATCH_SENDER_GATE, "installed", "0.0.0-unvetted")
    publisher = KafkaPublisher(topic=kafka_topic)
    try:
        assert publisher.publish([outbound_message(1)]).delivered == [1]
        publisher._producer.close(timeout=5)

        # when
        closed = publisher.publish([outbound_message(2)])
        again = publisher.publish([outbound_message(3)])
    finally:
        publisher.close()

    # then: no attempt counted for the closed producer's batch, and a fresh producer sends the next
    assert (closed.delivered, closed.failed) == ([], {})
    assert closed.unavailable is not None and "already closed" in closed.unavailable
    assert (again.delivered, again.failed, again.unavailable) == ([3], {}, None)


@pytest.mark.django_db
def test_a_kafka_publisher_bug_before_any_send_counts_an_attempt_for_the_batch(kafka_topic, monkeypatch):
    # given: pending Kafka deliveries, and a publisher that trips an assertion while connecting
    events = record_booking_events(fake_booking_ids(2))

    def broken_connect(self):
        raise AssertionError("Unrecognized configs: {'acks_all': True}")

    monkeypatch.setattr(KafkaPublisher, "_connect", broken_connect)

    # when
    result = outbox_relay_batch(destination=KAFKA)

    # then: a failed attempt per delivery with the reason, not a paused destination with none counted
    assert (result.failed, result.unavailable) == (2, False)
    for delivery in OutboxDelivery.objects.filter(event__in=events, destination=KAFKA):
        assert (delivery.state, delivery.attempts) == ("pending", 1)
        assert "AssertionError" in delivery.last_error
