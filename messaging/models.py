"""Transactional outbox: an event row written in the same transaction as the business change.

``OutboxEvent`` is the immutable message; ``OutboxDelivery`` is its delivery state, one row per
destination (RabbitMQ, Kafka), so one broker being down never holds back the other.
"""

from __future__ import annotations

from django.db import models
from uuid6 import uuid7


class OutboxEvent(models.Model):
    # Time-ordered (UUIDv7, RFC 9562): its unique index takes appends at the right edge, where a
    # random v4 id would dirty a random leaf page per event (and log it whole after each checkpoint).
    event_id = models.UUIDField(default=uuid7, unique=True, editable=False)
    aggregate_type = models.CharField(max_length=64)
    aggregate_id = models.CharField(max_length=64)
    event_type = models.CharField(max_length=64)
    routing_key = models.CharField(max_length=255)
    message_key = models.CharField(max_length=255, help_text="Kafka partition key (the aggregate id).")
    payload = models.JSONField()
    headers = models.JSONField(default=dict, blank=True)
    correlation_id = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["aggregate_type", "aggregate_id", "id"], name="outbox_aggregate_idx"),
            # Exact lookups only (the admin searches "=correlation_id"): no extra LIKE index to maintain.
            models.Index(fields=["correlation_id"], name="outbox_correlation_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.aggregate_type}:{self.aggregate_id} ({self.event_id})"


class OutboxDelivery(models.Model):
    class Destination(models.TextChoices):
        RABBITMQ = "rabbitmq", "RabbitMQ"
        KAFKA = "kafka", "Kafka"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        DEAD = "dead", "Dead"

    # No index of its own: the unique (event, destination) index serves every lookup by event, and
    # one index fewer to maintain on each relay update.
    # No database foreign key either (db_constraint=False), on purpose: PostgreSQL's check of one
    # uses a plan cached per connection, which on an empty outbox is a scan of the whole event
    # table (docs/performance.md). Integrity holds by construction: deliveries are inserted only
    # with their event, by one statement (messaging.services.outbox_event_record), and the purge
    # deletes both in one statement; the ORM still cascades deletes made through it.
    event = models.ForeignKey(
        OutboxEvent, on_delete=models.CASCADE, related_name="deliveries", db_index=False, db_constraint=False
    )
    destination = models.CharField(max_length=16, choices=Destination.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    # Denormalised from the event so the claim query and the per-aggregate order check use one index.
    aggregate_key = models.CharField(max_length=140)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # The relay process holding the lease (its liveness token, see messaging.relay.liveness); a
    # claim by a process that died is due again at once. Null when no relay holds the row.
    claimed_by = models.IntegerField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        verbose_name_plural = "outbox deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event", "destination"], name="outbox_delivery_unique_destination"),
        ]
        indexes = [
            models.Index(
                fields=["destination", "id"],
                name="outbox_delivery_pending_idx",
                condition=models.Q(state="pending"),
            ),
            models.Index(
                fields=["destination", "aggregate_key", "id"],
                name="outbox_delivery_agg_pending",
                condition=models.Q(state="pending"),
            ),
            # Dead rows block their aggregate (see messaging.relay) and are counted for the backlog.
            models.Index(
                fields=["destination", "aggregate_key", "id"],
                name="outbox_delivery_agg_dead",
                condition=models.Q(state="dead"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.destination}: {self.state}"


class ProcessedMessage(models.Model):
    """Inbox: the authority on "this handler already applied this event".

    Written in the same transaction as the handler's side-effect record, so a unique violation
    means the work was done before. Redis ``SET NX`` keys are only the fast path in front of it.
    ``dedup_key`` is the event id, or for foreign producers without one, a key derived from event
    type and booking id. Retention must cover the Kafka replay horizon.
    """

    handler = models.CharField(max_length=64)
    dedup_key = models.CharField(max_length=200)
    event_id = models.UUIDField(null=True, blank=True)
    transport = models.CharField(max_length=16)
    correlation_id = models.CharField(max_length=128, blank=True)
    processed_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["handler", "dedup_key"], name="processed_message_unique_per_handler"),
        ]

    def __str__(self) -> str:
        return f"{self.handler}:{self.dedup_key}"


class DeadLetter(models.Model):
    """A message a consumer could not handle, from either transport, with the reason.

    The message also sits in the broker's DLQ (RabbitMQ dead-letter queue / Kafka DLQ topic);
    this row is what operators list, search and re-drive from the admin.
    """

    class Transport(models.TextChoices):
        RABBITMQ = "rabbitmq", "RabbitMQ"
        KAFKA = "kafka", "Kafka"

    class State(models.TextChoices):
        DEAD = "dead", "Dead"
        REDRIVEN = "redriven", "Re-driven"
        DISCARDED = "discarded", "Discarded"

    transport = models.CharField(max_length=16, choices=Transport.choices)
    source = models.CharField(max_length=255, help_text="Queue or topic the message came from.")
    handler = models.CharField(max_length=64, blank=True)
    routing_key = models.CharField(max_length=255, blank=True)
    kafka_partition = models.IntegerField(null=True, blank=True)
    kafka_offset = models.BigIntegerField(null=True, blank=True)
    message_key = models.CharField(max_length=255, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    body = models.TextField(blank=True)
    reason = models.TextField()
    event_type = models.CharField(max_length=64, blank=True)
    event_id = models.CharField(max_length=64, blank=True)
    correlation_id = models.CharField(max_length=128, blank=True)
    state = models.CharField(max_length=16, choices=State.choices, default=State.DEAD, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    redriven_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.transport}:{self.source} {self.event_type or '?'} ({self.state})"
