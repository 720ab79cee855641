"""The publishers' fast paths on library internals: active on the pinned releases, and a warned
fallback to the public path on any other (so an upgrade that closes a gate fails here)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from amqp import Channel
from kafka import KafkaProducer

from messaging.publishers.kafka import KafkaPublisher
from messaging.publishers.kafka_batch_sender import KAFKA_BATCH_SENDER_GATE, kafka_batch_sender
from messaging.publishers.rabbitmq import AmqpPublisher
from messaging.publishers.rabbitmq_frames import AMQP_FRAME_WRITER_GATE
from messaging.publishers.version_gate import VersionGate
from messaging.tests.conftest import outbound_message

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"
GATES = [KAFKA_BATCH_SENDER_GATE, AMQP_FRAME_WRITER_GATE]


def _pinned(distribution: str) -> str:
    match = re.search(rf"^{re.escape(distribution)}==(\S+)", REQUIREMENTS.read_text(), re.MULTILINE)
    assert match, f"{distribution} is not pinned in requirements.txt"
    return match.group(1)


@pytest.mark.parametrize("gate", GATES, ids=lambda gate: gate.distribution)
def test_the_pinned_release_is_installed_and_opens_its_fast_path_gate(gate):
    # given the release requirements.txt pins
    pinned = _pinned(gate.distribution)

    # then it is the one installed, and its fast path is on
    assert gate.installed == pinned
    assert gate.is_open(), f"{gate.distribution} {pinned} is pinned but {gate.fast_path} is off"


def test_the_kafka_publisher_never_calls_send_on_the_pinned_release(kafka_topic, monkeypatch):
    # given: the public per-record send() broken, so only the batch sender can deliver
    def send(*_args, **_kwargs):
        raise AssertionError("KafkaProducer.send() used")

    monkeypatch.setattr(KafkaProducer, "send", send)
    publisher = KafkaPublisher(topic=kafka_topic)
    try:
        # when
        outcome = publisher.publish([outbound_message(1), outbound_message(2)])
    finally:
        publisher.close()

    # then
    assert (sorted(outcome.delivered), outcome.failed, outcome.unavailable) == ([1, 2], {}, None)


def test_the_amqp_publisher_never_calls_basic_publish_on_the_pinned_release(amqp_reader, monkeypatch):
    # given: a bound queue, and the public per-message basic_publish broken
    def basic_publish(*_args, **_kwargs):
        raise AssertionError("Channel.basic_publish used")

    monkeypatch.setattr(Channel, "basic_publish", basic_publish)
    reader = amqp_reader()
    publisher = AmqpPublisher()
    try:
        # when
        outcome = publisher.publish([outbound_message(1), outbound_message(2)])
    finally:
        publisher.close()

    # then
    assert (sorted(outcome.delivered), outcome.failed, outcome.unavailable) == ([1, 2], {}, None)
    assert len(reader.read(count=2)) == 2


@pytest.mark.parametrize("gate", GATES, ids=lambda gate: gate.distribution)
def test_a_gate_on_an_unvetted_release_falls_back_and_warns_once(gate, monkeypatch, caplog):
    # given a release the fast path was not checked against
    monkeypatch.setattr(gate, "installed", "999.0.0")
    monkeypatch.setattr(gate, "_warned", False)
    caplog.set_level(logging.WARNING, logger="messaging.publishers.version_gate")

    # when the gate is asked on every batch
    answers = [gate.is_open() for _ in range(3)]

    # then the public path is taken every time, and said so once
    assert answers == [False, False, False]
    warnings = [r for r in caplog.records if r.name == "messaging.publishers.version_gate"]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "999.0.0" in warnings[0].getMessage() and gate.fallback in warnings[0].getMessage()


def test_the_kafka_batch_sender_is_plain_send_when_its_gate_is_closed(monkeypatch):
    # given a closed gate and a stand-in producer (only its public send() may be called)
    monkeypatch.setattr(KAFKA_BATCH_SENDER_GATE, "installed", "999.0.0")
    monkeypatch.setattr(KAFKA_BATCH_SENDER_GATE, "_warned", True)
    sent = []

    class Producer:
        def send(self, topic, *, key, value, headers):
            sent.append((topic, key, value, headers))
            return "future"

    # when
    send, batch_end = kafka_batch_sender(producer=Producer(), topic="t")
    future = send(b"k", b"v", [("h", b"1")])
    batch_end()

    # then
    assert future == "future"
    assert sent == [("t", b"k", b"v", [("h", b"1")])]


def test_a_gate_is_open_only_for_its_supported_releases():
    # given a gate for a distribution that is installed
    gate = VersionGate(distribution="amqp", supported=(), fast_path="a fast path", fallback="the public path")

    # then a release outside its list closes it, one in its list opens it
    gate._warned = True
    assert not gate.is_open()
    gate.supported = (gate.installed,)
    assert gate.is_open()
