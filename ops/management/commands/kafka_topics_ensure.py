"""``manage.py kafka_topics_ensure``: create tour_events and its DLQ topic as the settings say."""

from django.core.management.base import BaseCommand

from ops.kafka_topics import kafka_topics_ensure


class Command(BaseCommand):
    help = (
        "Create KAFKA_TOPIC (KAFKA_TOPIC_PARTITIONS partitions) and KAFKA_DLQ_TOPIC with "
        "KAFKA_REPLICATION_FACTOR replicas and min.insync.replicas=KAFKA_MIN_INSYNC_REPLICAS. Idempotent."
    )

    def handle(self, *args, **options) -> None:
        for topic, outcome in kafka_topics_ensure().items():
            self.stdout.write(f"{topic}: {outcome}")
