"""Bookings. Price, status and owner are set by services only, never by clients."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from availability.models import Departure
from bookings.event_schema import TIER_PREMIUM, TIER_STANDARD


class Booking(models.Model):
    class Tier(models.TextChoices):
        PREMIUM = TIER_PREMIUM, "Premium"
        STANDARD = TIER_STANDARD, "Standard"

    class Status(models.TextChoices):
        CONFIRMED = "confirmed", "Confirmed"
        CANCELLED = "cancelled", "Cancelled"

    class CancellationReason(models.TextChoices):
        CUSTOMER = "customer", "Cancelled by the customer"
        STAFF = "staff", "Cancelled by staff"
        PAYMENT_DECLINED = "payment_declined", "Payment declined"

    class PaymentStatus(models.TextChoices):
        # Set by payments (through bookings.services); a booking holds its seats while "pending".
        PENDING = "pending", "Pending"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed"
        REFUNDED = "refunded", "Refunded"

    # No index of its own: booking_user_recent_idx (user, -created_at) serves every lookup by user.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bookings", db_index=False
    )
    departure = models.ForeignKey(Departure, on_delete=models.PROTECT, related_name="bookings")
    seats = models.PositiveIntegerField()
    tier = models.CharField(max_length=16, choices=Tier.choices, default=Tier.STANDARD)
    total_price = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3)
    contact_email = models.EmailField()
    contact_phone = models.CharField(max_length=32, blank=True)
    # Not indexed: two values, always filtered together with the user or the departure (each
    # index is one more write on every booking).
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CONFIRMED)
    # NULL (not "") means "no key", so the partial unique constraint ignores keyless bookings.
    idempotency_key = models.CharField(max_length=128, null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # Database defaults too: rows written by hand-made SQL (benchmarks' history, bulk loads) stay valid.
    cancellation_reason = models.CharField(
        max_length=32, choices=CancellationReason.choices, blank=True, default="", db_default=""
    )
    payment_status = models.CharField(
        max_length=16, choices=PaymentStatus.choices, default=PaymentStatus.PENDING, db_default=PaymentStatus.PENDING
    )
    # The payment method the gateway charges (the dummy gateway reads its outcome from it); "" means
    # PAYMENTS_DEFAULT_TOKEN. An opaque provider token, never card data.
    payment_token = models.CharField(max_length=64, blank=True, default="", db_default="")

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(seats__gte=1), name="booking_seats_positive"),
            models.CheckConstraint(condition=models.Q(total_price__gte=0), name="booking_price_non_negative"),
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                name="booking_unique_idempotency_key_per_user",
                condition=models.Q(idempotency_key__isnull=False),
            ),
        ]
        indexes = [models.Index(fields=["user", "-created_at"], name="booking_user_recent_idx")]

    def __str__(self) -> str:
        return f"Booking {self.pk} ({self.status})"
