"""Development email backend: one log line per message, recipients masked, body never printed.

Django's console backend writes every message whole (headers, ``To:`` in clear, the body) to
stdout; this one logs ``email to u***@example.com: '<subject>' (<n> bytes)`` through the
``notifications.email`` logger instead, so a development console shows that a mail left, and
no personal data. Nothing is delivered. Production uses SMTP (``EMAIL_BACKEND``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage

from tourapp.pii import mask_email

logger = logging.getLogger("notifications.email")


class MaskedLogEmailBackend(BaseEmailBackend):
    """Logs one masked line per message and reports it as sent."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        sent = 0
        for message in email_messages:
            recipients = message.recipients()
            if not recipients:
                continue
            size = len(message.message().as_bytes())
            masked = ", ".join(mask_email(address) for address in recipients)
            logger.info(
                "email to %s: %r (%d bytes)",
                masked,
                message.subject,
                size,
                extra={"recipient_masked": masked, "email_bytes": size},
            )
            sent += 1
        return sent
