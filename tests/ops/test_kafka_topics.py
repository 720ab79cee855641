"""manage.py kafka_topics_ensure against the real Kafka broker."""

from __future__ import annotations

import uuid

from django.core.management import call_command
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from tests.support.kafka import kafka_topics_delete
from tests.support.waiting import wait_until


def test_kafka_topics_ensure_creates_topics_sized_by_settings_then_is_idempotent(settings, capsys):
    # given topic names nobody uses yet
    name = f"ops-topics-{uuid.uuid4().hex[:8]}"
    settings.KAFKA_TOPIC = name
    settings.KAFKA_DLQ_TOPIC = f"{name}.dlq"
    settings.KAFKA_TOPIC_PARTITIONS = 3
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
    try:
        # when run twice
        call_command("kafka_topics_ensure")
        call_command("kafka_topics_ensure")
        # then both topics exist, the main one with 3 partitions and min.insync.replicas from settings
        out = capsys.readouterr().out
        assert f"{name}: created" in out
        assert f"{name}: exists" in out

        def partitions() -> dict[str, int] | None:
            described = {t["topic"]: len(t["partitions"]) for t in admin.describe_topics([name, f"{name}.dlq"])}
            return described if all(described.values()) else None  # leaders are elected just after creation

        assert wait_until(partitions, timeout=15, what="topic metadata") == {name: 3, f"{name}.dlq": 1}
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        entries = {entry[0]: entry[1] for entry in configs[0].resources[0][4]}
        assert entries["min.insync.replicas"] == str(settings.KAFKA_MIN_INSYNC_REPLICAS)
    finally:
        admin.close()
        kafka_topics_delete(name, f"{name}.dlq")
