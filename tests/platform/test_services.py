"""Each backing service, proven from Django's side against the real server, and locked down.

Lock-down (``scripts/services up``): RabbitMQ without ``guest``, the app user without tags and on
its vhost only, a separate management user, every listener on loopback, Redis in protected mode.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import urllib.error
import urllib.request
import uuid
from base64 import b64encode
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from kombu import Connection, Exchange, Queue
from redis import Redis

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "scripts" / "services"
APP_USER, APP_VHOST, ADMIN_USER = "tourapp", "tourapp", "tourapp-admin"
# Every port a backing service listens on: PostgreSQL, Redis, AMQP, management UI, Erlang
# distribution, epmd, Kafka broker and controller.
PORTS = {5432: "postgres", 6379: "redis", 5672: "amqp", 15672: "rabbitmq management", 25672: "erlang distribution"}
PORTS |= {4369: "epmd", 9092: "kafka", 9093: "kafka controller"}
LOOPBACK = re.compile(r"^(127\.[\d.]+|\[::1\]|\[::ffff:127\.[\d.]+\]):(\d+)$")


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


def _rabbitmqctl_json(*args: str) -> Any:
    result = subprocess.run(
        ["rabbitmqctl", "-q", *args, "--formatter", "json"], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(result.stdout)


def _management_status(user: str, password: str) -> int:
    token = b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request("http://127.0.0.1:15672/api/whoami", headers={"Authorization": f"Basic {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - local broker
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_rabbitmq_has_no_guest_user_and_the_app_user_is_not_an_administrator():
    # when
    users = {row["user"]: row["tags"] for row in _rabbitmqctl_json("list_users")}
    # then
    assert "guest" not in users
    assert users[APP_USER] == []
    assert users[ADMIN_USER] == ["administrator"]


def test_services_up_locks_a_running_broker_down_again_without_restarting_it():
    # given the app user made an administrator again, on the running node
    pid_before = _rabbitmqctl_json("status")
    subprocess.run(["rabbitmqctl", "-q", "set_user_tags", APP_USER, "administrator"], check=True, timeout=60)
    # when
    result = subprocess.run(["bash", str(SERVICES), "up"], capture_output=True, text=True, timeout=240, check=False)
    # then
    assert result.returncode == 0, result.stderr[-2000:]
    users = {row["user"]: row["tags"] for row in _rabbitmqctl_json("list_users")}
    assert users[APP_USER] == [] and "guest" not in users
    assert _rabbitmqctl_json("status")["pid"] == pid_before["pid"], "the node was restarted"


def test_the_app_user_has_permissions_on_its_vhost_only():
    permissions = _rabbitmqctl_json("list_user_permissions", APP_USER)
    assert [row["vhost"] for row in permissions] == [APP_VHOST]


def test_the_management_ui_refuses_the_app_user_and_guest_and_admits_the_management_user():
    # given the management password as scripts/services keeps it (environment, else .cache, 0600)
    password = os.environ.get("TOURAPP_RABBIT_ADMIN_PASSWORD")
    if not password:
        secret = ROOT / ".cache" / "rabbitmq" / "admin-password"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        password = secret.read_text().strip()
    # then
    assert _management_status(APP_USER, "tourapp") == 401
    assert _management_status("guest", "guest") == 401
    assert _management_status(ADMIN_USER, password) == 200


def test_rabbitmq_config_written_by_the_script_binds_every_listener_to_loopback(tmp_path):
    # when
    result = subprocess.run(
        ["bash", str(SERVICES), "rabbitmq-config"],
        env={**os.environ, "TOURAPP_CACHE": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    conf_path, env_path = (Path(line) for line in result.stdout.split())
    conf = dict(
        line.split(" = ", 1) for line in conf_path.read_text().splitlines() if line and not line.startswith("#")
    )
    env_file = env_path.read_text()
    # then
    assert conf["listeners.tcp.default"] == "127.0.0.1:5672"
    assert conf["management.tcp.ip"] == "127.0.0.1"
    assert conf["distribution.listener.interface"] == "127.0.0.1"
    assert "NODE_IP_ADDRESS=127.0.0.1" in env_file.splitlines()
    assert "export ERL_EPMD_ADDRESS=127.0.0.1" in env_file.splitlines()
    assert f"CONFIG_FILE={conf_path}" in env_file.splitlines()


def test_every_backing_service_listens_on_loopback_only():
    # given every listening TCP socket of this machine
    sockets = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True, timeout=30, check=True).stdout
    public = []
    for line in sockets.splitlines():
        local = line.split()[3]
        port = int(local.rsplit(":", 1)[1])
        if port in PORTS and not LOOPBACK.match(local):
            public.append(f"{PORTS[port]} on {local}")
    # then (RabbitMQ reads its listener addresses at start: a node started before the lock-down
    # config needs `scripts/services down && scripts/services up` once)
    assert not public, f"listening beyond loopback: {public}"


def test_redis_is_bound_to_loopback_in_protected_mode():
    client = Redis.from_url(settings.REDIS_URL)
    assert client.config_get("bind")["bind"].split() == ["127.0.0.1"]
    assert client.config_get("protected-mode")["protected-mode"] == "yes"
