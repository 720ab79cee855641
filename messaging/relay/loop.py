"""The relay loop: each Celery worker drains the outbox as soon as an event commits.

Every commit that writes an event sends a PostgreSQL ``NOTIFY`` on ``OUTBOX_NOTIFY_CHANNEL``
(issued by ``outbox_event_record``'s own statement and delivered at commit; after a requeue by
``messaging.services.outbox_relay_kick``, run ``on_commit``). This worker-level bootstep runs one
thread per destination in the worker's main process; each ``LISTEN``s on that channel with a
connection of its own and drains its destination when woken, or every
``OUTBOX_WORKER_LOOP_SECONDS`` when nothing woke it.

Why a ``NOTIFY`` and not a Celery task per commit: RabbitMQ is both the Celery broker and an
outbox destination, so during its outage a task could not reach a worker and Kafka delivery would
stall too; and a ``NOTIFY`` costs one statement, queues nothing and coalesces: a thread woken by
many commits drains them all at once (docs/performance.md).
Beat's ``outbox_sweep_task`` stays as the safety net (a worker that was down, a lost notify).

Never a second publisher of the same row: claims use ``SKIP LOCKED`` and a lease, so the loops
of every worker and the sweep share the work.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import psycopg
from celery import bootsteps
from django.conf import settings
from django.db import close_old_connections, connection, connections
from psycopg import sql

from messaging.queries import RELAY_LISTEN_SQL
from messaging.relay.drain import outbox_relay_drain

logger = logging.getLogger(__name__)


class OutboxRelayLoopStep(bootsteps.StartStopStep):
    label = "outbox relay loop"

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, parent: Any) -> None:
        if settings.OUTBOX_WORKER_LOOP_SECONDS <= 0:
            return
        for destination in settings.OUTBOX_DESTINATIONS:
            loop = RelayLoop(destination=destination, stopping=self._stopping)
            thread = threading.Thread(target=loop.run, name=f"outbox-relay-{destination}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, parent: Any) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=10)


class RelayLoop:
    """Drain one destination on every ``NOTIFY`` (coalesced) and on a timer; survives database restarts."""

    def __init__(self, *, destination: str, stopping: threading.Event) -> None:
        self.destination = destination
        self.stopping = stopping
        self._listener: psycopg.Connection | None = None

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                self._drain()
                self._wait_for_kick()
        finally:
            self._close_listener()
            connection.close()

    def _drain(self) -> None:
        close_old_connections()
        try:
            result = outbox_relay_drain(destination=self.destination)
        except Exception:
            logger.exception("outbox relay loop: %s drain failed", self.destination)
            return
        if result.failed:
            logger.warning(
                "outbox relay loop %s: %d delivered, %d failed",
                self.destination,
                result.delivered,
                result.failed,
                extra={"destination": self.destination},
            )

    def _wait_for_kick(self) -> None:
        """Block until a commit notifies the channel, the loop period passes, or the worker stops."""
        deadline = time.monotonic() + settings.OUTBOX_WORKER_LOOP_SECONDS
        try:
            listener = self._listen()
            while not self.stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                # Short slices, so a stopping worker is not held up by a quiet channel.
                if list(listener.notifies(timeout=min(remaining, 0.5), stop_after=1)):
                    # One wake-up is enough: the drain takes everything committed so far.
                    list(listener.notifies(timeout=0.001))
                    return
        except psycopg.Error:
            logger.warning("outbox relay loop %s: LISTEN connection lost; polling", self.destination, exc_info=True)
            self._close_listener()
            self.stopping.wait(min(settings.OUTBOX_WORKER_LOOP_SECONDS, 1.0))

    def _listen(self) -> psycopg.Connection:
        if self._listener is None or self._listener.closed:
            params = connections["default"].get_connection_params()
            self._listener = psycopg.connect(**params, autocommit=True)
            self._listener.execute(sql.SQL(RELAY_LISTEN_SQL).format(sql.Identifier(settings.OUTBOX_NOTIFY_CHANNEL)))
        return self._listener

    def _close_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(psycopg.Error):
                self._listener.close()
            self._listener = None
