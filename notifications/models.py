"""Notification records (one per event and channel) and each user's notification language.

``Notification`` is both the outbox of the notification tasks and the audit trail shown in the
admin: the unique ``(dedup_key, channel)`` constraint means one email and one SMS per event, even
if the inbox's own records were purged and the event replayed. ``sending`` + ``claimed_at`` is the
lease a send task holds while it talks to the provider, with no transaction open (see
``notifications.services.notification_send``).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


def default_language() -> str:
    return settings.LANGUAGE_CODE


class NotificationPreference(models.Model):
    """The language a user's notifications are written in (no row: ``settings.LANGUAGE_CODE``)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preference"
    )
    language = models.CharField(max_length=8, choices=settings.LANGUAGES, default=default_language)

    def __str__(self) -> str:
        return f"{self.user_id}: {self.language}"


class Notification(models.Model):
    class Channel(models.TextChoices):
        EMAIL = "email", "Email"
        SMS = "sms", "SMS"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    dedup_key = models.CharField(max_length=200, help_text="Event id, or event type + booking id (foreign producers).")
    event_id = models.UUIDField(null=True, blank=True)
    event_type = models.CharField(max_length=64)
    booking_id = models.CharField(max_length=64, db_index=True)
    correlation_id = models.CharField(max_length=128, blank=True)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    # The real address is needed to send; only the masked one is ever displayed or logged.
    recipient = models.CharField(max_length=254)
    recipient_masked = models.CharField(max_length=254)
    language = models.CharField(max_length=8)
    context = models.JSONField(default=dict, help_text="What the text is rendered from (tour, amount, currency...).")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    summary = models.CharField(max_length=500, blank=True, help_text="What was sent, recipient masked.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Set with status "sending": the claim's identity, and when its lease started.
    claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["dedup_key", "channel"], name="notification_unique_per_event_channel"),
        ]
        indexes = [models.Index(fields=["status", "updated_at"], name="notification_status_idx")]

    def __str__(self) -> str:
        return f"{self.channel} to {self.recipient_masked} ({self.status})"
