"""Payments: one charge and at most one refund per booking, each its own row.

The database holds the invariants: one row per (booking, kind), one row per idempotency key (the
key the gateway deduplicates on), amounts in minor units and never negative.
"""

from __future__ import annotations

from django.db import models

from bookings.models import Booking


class Payment(models.Model):
    class Kind(models.TextChoices):
        CHARGE = "charge", "Charge"
        REFUND = "refund", "Refund"

    class State(models.TextChoices):
        PENDING = "pending", "Pending"  # to be sent (or re-sent) to the gateway
        SUCCEEDED = "succeeded", "Succeeded"  # charge captured / refund made
        FAILED = "failed", "Failed"  # the gateway declined (a definitive answer)
        SKIPPED = "skipped", "Skipped"  # nothing to do (booking cancelled before any attempt; nothing to refund)
        DEAD = "dead", "Dead"  # retries exhausted or a permanent error: staff re-drive it from the admin

    booking = models.ForeignKey(Booking, on_delete=models.PROTECT, related_name="payments")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    amount_minor = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3)
    idempotency_key = models.CharField(max_length=128, unique=True)
    payment_token = models.CharField(max_length=64, blank=True)
    provider = models.CharField(max_length=32)
    provider_reference = models.CharField(max_length=64, blank=True, db_index=True)
    decline_code = models.CharField(max_length=64, blank=True)
    # Gateway calls made (committed BEFORE each call: 0 means the gateway never heard of it).
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    correlation_id = models.CharField(max_length=128, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["booking", "kind"], name="payment_unique_kind_per_booking"),
        ]
        indexes = [models.Index(fields=["state", "updated_at"], name="payment_state_updated_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.pk} for booking {self.booking_id} ({self.state})"
