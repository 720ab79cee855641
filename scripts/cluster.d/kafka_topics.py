"""Create (if missing) and check the cluster's topics: ``kafka_topics.py BOOTSTRAP [--check]``.

``tour_events`` (3 partitions) and ``tour_events.dlq`` (1), each with replication factor 3,
``min.insync.replicas=2`` and ``unclean.leader.election.enable=false`` set on the topic itself,
so they hold whatever the brokers' defaults are. Exit 0 when both exist with those settings;
``--check`` only checks. Also prints one line per partition: leader and in-sync replicas.
"""

from __future__ import annotations

import contextlib
import sys

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import TopicAlreadyExistsError

TOPICS = {"tour_events": 3, "tour_events.dlq": 1}
REPLICATION_FACTOR = 3
CONFIGS = {"min.insync.replicas": "2", "unclean.leader.election.enable": "false"}


def main(argv: list[str]) -> int:
    bootstrap, check_only = argv[1], "--check" in argv
    admin = KafkaAdminClient(
        bootstrap_servers=bootstrap.split(","), request_timeout_ms=10000, client_id="tourapp-cluster"
    )
    try:
        existing = set(admin.list_topics())
        missing = [
            NewTopic(name, partitions, REPLICATION_FACTOR, topic_configs=dict(CONFIGS))
            for name, partitions in TOPICS.items()
            if name not in existing
        ]
        if missing and not check_only:
            for topic in missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics([topic])
        ok = True
        for meta in admin.describe_topics(list(TOPICS)):
            name = meta["topic"]
            if meta.get("error_code"):
                print(f"{name}: missing (error {meta['error_code']})")
                ok = False
                continue
            for part in sorted(meta["partitions"], key=lambda p: p["partition"]):
                replicas, isr = part["replicas"], part["isr"]
                print(f"{name}[{part['partition']}] leader={part['leader']} replicas={replicas} isr={isr}")
                ok = ok and len(replicas) == REPLICATION_FACTOR
            if len(meta["partitions"]) != TOPICS[name]:
                ok = False
        resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in TOPICS]
        for response in admin.describe_configs(resources):
            for resource in response.resources:
                name, configs = resource[3], {entry[0]: entry[1] for entry in resource[4]}
                for key, wanted in CONFIGS.items():
                    if configs.get(key) != wanted:
                        print(f"{name}: {key}={configs.get(key)} (want {wanted})")
                        ok = False
        return 0 if ok else 1
    finally:
        admin.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
