"""Recording email and SMS backends: each send appends one JSON line to a file the test reads.

The end-to-end processes send through these (``tests/e2e/harness.py`` sets ``EMAIL_BACKEND``,
``SMS_BACKEND`` and ``TOURAPP_SEND_RECORD``, the file's path), so a test counts what actually
went out, per (booking, channel, event), rather than the notification rows a unique constraint
already keeps at one. The worker is a separate process, hence a file: each record is one
``write`` on an ``O_APPEND`` descriptor, so concurrent senders never interleave and a record
survives its process being killed right after the send. No recipient is recorded (no PII).
The booking and event come from the log context ``notification_send`` opens around the send.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from django.core.mail.backends.base import BaseEmailBackend
from django.core.mail.message import EmailMessage

from notifications.sms import BaseSmsBackend
from tourapp.correlation import get_correlation_id, get_log_context

RECORD_ENV = "TOURAPP_SEND_RECORD"


@dataclass(frozen=True)
class SendRecord:
    """One message a backend reported as sent."""

    channel: str
    booking_id: str | None
    event_id: str | None
    digest: str  # of the subject / text: tells apart events that carry no event id
    correlation_id: str | None = None

    @property
    def effect(self) -> tuple[str | None, str, str]:
        """(booking, channel, event): what must be sent at most once."""
        return (self.booking_id, self.channel, self.event_id or self.digest)


def _record(*, channel: str, text: str, size: int) -> None:
    context = get_log_context()
    line = json.dumps(
        {
            "channel": channel,
            "booking_id": context.get("booking_id"),
            "event_id": context.get("event_id"),
            "digest": hashlib.sha256(text.encode()).hexdigest()[:16],
            "bytes": size,
            "correlation_id": get_correlation_id(),
            "pid": os.getpid(),
            "at": time.time(),
        }
    )
    fd = os.open(os.environ[RECORD_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


class RecordingEmailBackend(BaseEmailBackend):
    """Records each message (see the module docstring) and reports it as sent; delivers nothing."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        sent = 0
        for message in email_messages:
            if message.recipients():
                # rendered whole, as a real backend would before handing it over
                _record(channel="email", text=str(message.subject), size=len(message.message().as_bytes()))
                sent += 1
        return sent


class RecordingSmsBackend(BaseSmsBackend):
    """Records each SMS (see the module docstring); delivers nothing."""

    def send(self, *, to: str, text: str) -> None:
        _record(channel="sms", text=text, size=len(text.encode()))


def sends_read(path: Path) -> list[SendRecord]:
    """Every complete record in ``path`` (none when nothing was sent yet)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            raw = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash mid-write is no send the provider took
        records.append(
            SendRecord(
                channel=raw["channel"],
                booking_id=raw.get("booking_id"),
                event_id=raw.get("event_id"),
                digest=raw["digest"],
                correlation_id=raw.get("correlation_id"),
            )
        )
    return records
