"""``manage.py availability_rebuild``: rebuild the availability read model from the Kafka log.

1. Reset: delete every ``DepartureAvailability`` row, the availability handler's inbox rows and
   its Redis idempotency keys (other handlers' records are untouched: no email is re-sent).
2. Replay ``KAFKA_TOPIC`` from the beginning into a FRESH consumer group
   (``<KAFKA_CONSUMER_GROUP>.rebuild.<timestamp>``) driving ONLY the availability handler, until
   every partition is caught up (or ``--idle-timeout`` passes without records).

Events applied by the live consumer while this runs are deduplicated against the replay by the
inbox, and a live batch caught by the reset rolls back and is retried (see
``availability.read_model``), so running it on a live system is safe.
"""

from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from availability.read_model import HANDLER_NAME, availability_read_model_reset
from messaging.consumers.kafka import KafkaEventConsumer
from messaging.registry import handler_get


class Command(BaseCommand):
    help = "Reset the availability read model and rebuild it by replaying the Kafka topic from the beginning."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--topic", help="Topic to replay (default settings.KAFKA_TOPIC).")
        parser.add_argument("--idle-timeout", type=float, default=10.0, help="Give up after this long without records.")

    def handle(self, *args: Any, **options: Any) -> None:
        reset = availability_read_model_reset()
        self.stderr.write(f"reset: {reset}")
        group = f"{settings.KAFKA_CONSUMER_GROUP}.rebuild.{int(time.time() * 1000)}"
        consumer = KafkaEventConsumer(
            handlers=[handler_get(HANDLER_NAME)],
            topic=options["topic"],
            group=group,
            from_beginning=True,
            idle_timeout=options["idle_timeout"],
            until_caught_up=True,
        )
        stats = consumer.run()
        self.stdout.write(json.dumps({"group": group, "reset": reset, **stats.__dict__}))
