"""``manage.py run_kafka_consumer``: a thin shell over :class:`messaging.consumers.kafka.KafkaEventConsumer`.

SIGTERM / SIGINT finish the current batch, commit its offsets and close. See the consumer's
module docstring for the offset-reset policy (``earliest`` for a group without offsets;
``--from-beginning`` replays even a group that has some).
"""

from __future__ import annotations

import json
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from messaging.consumers.kafka import KafkaEventConsumer
from messaging.registry import handler_get


class Command(BaseCommand):
    help = "Consume tour_events from Kafka and apply the handlers routed to Kafka (at-least-once, deduplicated)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--group", help="Consumer group (default settings.KAFKA_CONSUMER_GROUP).")
        parser.add_argument("--topic", help="Topic (default settings.KAFKA_TOPIC).")
        parser.add_argument("--from-beginning", action="store_true", help="Seek every partition to the start.")
        parser.add_argument("--max-messages", type=int, help="Stop after this many records.")
        parser.add_argument("--idle-timeout", type=float, help="Stop after this many seconds without records.")
        parser.add_argument(
            "--handlers",
            help="Comma-separated handler names; overrides EVENT_HANDLER_ROUTES (e.g. 'availability').",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        names = [n.strip() for n in (options["handlers"] or "").split(",") if n.strip()]
        consumer = KafkaEventConsumer(
            handlers=[handler_get(name) for name in names] if names else None,
            topic=options["topic"],
            group=options["group"],
            from_beginning=options["from_beginning"],
            max_messages=options["max_messages"],
            idle_timeout=options["idle_timeout"],
        )
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: consumer.stop())
        stats = consumer.run()
        self.stdout.write(json.dumps(stats.__dict__))
