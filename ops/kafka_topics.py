"""Create the Kafka topics the app needs, sized by settings (idempotent).

``KAFKA_TOPIC`` gets ``KAFKA_TOPIC_PARTITIONS`` partitions, ``KAFKA_DLQ_TOPIC`` one; both get
``KAFKA_REPLICATION_FACTOR`` replicas and ``min.insync.replicas=KAFKA_MIN_INSYNC_REPLICAS``.
On a 3-broker cluster, 3 and 2 mean a write acknowledged with ``acks=all`` survives losing a
broker, and producers are refused (not silently degraded) when two are gone. Existing topics are
left as they are: changing partitions or replicas of a live topic is an operator's decision.
"""

from __future__ import annotations

from django.conf import settings
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError


def kafka_topics_ensure() -> dict[str, str]:
    """Return ``{topic: "created" | "exists"}``."""
    config = {"min.insync.replicas": str(settings.KAFKA_MIN_INSYNC_REPLICAS)}
    wanted = {
        settings.KAFKA_TOPIC: settings.KAFKA_TOPIC_PARTITIONS,
        settings.KAFKA_DLQ_TOPIC: 1,
    }
    admin = KafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, client_id="tourapp-topics")
    try:
        existing = set(admin.list_topics())
        result = {name: "exists" for name in wanted if name in existing}
        for name, partitions in wanted.items():
            if name in existing:
                continue
            topic = NewTopic(name, partitions, settings.KAFKA_REPLICATION_FACTOR, topic_configs=config)
            try:
                admin.create_topics([topic])
                result[name] = "created"
            except TopicAlreadyExistsError:  # created meanwhile by another process
                result[name] = "exists"
        return result
    finally:
        admin.close()
