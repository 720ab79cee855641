"""AMQP (RabbitMQ) topology shared by the relay (publisher) and the consumers.

The ``tour_events`` topic exchange is part of the wire contract: durable, type topic.

``EVENTS_AMQP_URL`` may list several nodes of one cluster, ``;``-separated (as
``CELERY_BROKER_URL`` does for Celery). Guarantee of :func:`events_connection`: a connection
attempt with a retry budget of ``n`` tries every listed node ``n + 1`` times before it fails, so
one dead node never makes a relay or consumer give up while another node answers; and a process
starts its next connection at the node that last accepted it, so a dead first node costs one
refused connect, not one per connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Self

from django.conf import settings
from kombu import Connection, Exchange

_preferred_lock = threading.Lock()
_preferred: dict[str, str] = {}  # the URL setting -> the alternate that last accepted a connection


def events_exchange(name: str | None = None) -> Exchange:
    """The events exchange (``name`` defaults to ``settings.EVENTS_EXCHANGE``; benchmarks pass their own)."""
    return Exchange(name or settings.EVENTS_EXCHANGE, type="topic", durable=True)


def amqp_urls(url: str) -> list[str]:
    """The node URLs of a ``;``-separated AMQP URL setting (one URL: a list of one)."""
    return [part.strip() for part in url.split(";") if part.strip()]


class FailoverConnection(Connection):
    """A kombu ``Connection`` whose retry budget counts rounds over all its nodes.

    kombu counts ``max_retries`` per connection attempt, and switches to the next alternate only
    between retries: ``ensure_connection(max_retries=0)`` (the relay's "fail fast, the outbox
    retries later") would try the first node alone, forever, while it is down.
    """

    def __init__(self, *args: Any, preference_key: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._preference_key = preference_key

    def ensure_connection(
        self,
        errback: Callable[[Exception, float], None] | None = None,
        max_retries: int | None = None,
        interval_start: int = 2,
        interval_step: int = 2,
        interval_max: int = 30,
        callback: Callable[[], None] | None = None,
        reraise_as_library_errors: bool = True,
        timeout: int | None = None,
    ) -> Self:
        # Left out, kombu's max_retries is None: retry forever (the consumers' reconnect loop).
        budget: dict[str, int] = {}
        if max_retries is not None:
            budget["max_retries"] = (max_retries + 1) * max(len(self.alt), 1) - 1
        super().ensure_connection(
            errback,
            interval_start=interval_start,
            interval_step=interval_step,
            interval_max=interval_max,
            callback=callback,
            reraise_as_library_errors=reraise_as_library_errors,
            timeout=timeout,
            **budget,
        )
        self._remember_node()
        return self

    def clone(self, **kwargs: Any) -> Any:
        return super().clone(preference_key=self._preference_key, **kwargs)

    def _remember_node(self) -> None:
        if not self._preference_key or len(self.alt) < 2:
            return
        current = (self.hostname, self.port)
        for url in self.alt:
            candidate = Connection(url)
            if (candidate.hostname, candidate.port) == current:
                with _preferred_lock:
                    _preferred[self._preference_key] = url
                return


def _ordered(urls: list[str], preferred: str | None) -> list[str]:
    if preferred in urls:
        start = urls.index(preferred)
        return urls[start:] + urls[:start]
    return urls


def events_connection(**options: Any) -> Connection:
    """A new (not yet connected) kombu connection to the events broker (any node of it)."""
    options.setdefault("heartbeat", 30)
    options.setdefault("connect_timeout", 5)
    setting = settings.EVENTS_AMQP_URL
    urls = amqp_urls(setting)
    if len(urls) < 2:
        return Connection(setting, **options)
    with _preferred_lock:
        preferred = _preferred.get(setting)
    return FailoverConnection(";".join(_ordered(urls, preferred)), preference_key=setting, **options)
