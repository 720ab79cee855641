"""Pluggable SMS backends, chosen by ``settings.SMS_BACKEND`` (a dotted class path).

A backend raises :class:`TransientSmsError` for failures worth retrying (timeouts, 5xx from a
provider) and anything else for permanent ones. The phone number is never logged in clear.

A backend that talks to a provider bounds every network call by ``self.timeout``
(``SMS_TIMEOUT_SECONDS``): a provider that hangs must fail the send, not pin a worker slot. The
send runs with no database transaction open (see ``notifications.services``).
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.utils.module_loading import import_string

from tourapp.pii import mask_phone

logger = logging.getLogger(__name__)


class TransientSmsError(Exception):
    """The provider may accept the same SMS later."""


class BaseSmsBackend:
    def __init__(self, *, timeout: float | None = None) -> None:
        self.timeout = settings.SMS_TIMEOUT_SECONDS if timeout is None else timeout

    def send(self, *, to: str, text: str) -> None:
        raise NotImplementedError


class LoggingSmsBackend(BaseSmsBackend):
    """Development backend: writes the SMS to the log, phone masked."""

    def send(self, *, to: str, text: str) -> None:
        logger.info("SMS to %s: %s", mask_phone(to), text)


class LocmemSmsBackend(BaseSmsBackend):
    """Test backend: keeps sent SMS in ``LocmemSmsBackend.outbox`` (like Django's locmem email backend)."""

    outbox: list[tuple[str, str]] = []

    def send(self, *, to: str, text: str) -> None:
        LocmemSmsBackend.outbox.append((to, text))


def sms_backend() -> BaseSmsBackend:
    return import_string(settings.SMS_BACKEND)()
