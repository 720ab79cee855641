"""A relay loop inside each Celery worker that needs no Celery broker.

RabbitMQ is both the Celery broker and one of the outbox destinations. When it is down, neither
the on-commit kick nor beat's sweep can reach a worker, so without this loop Kafka delivery would
stop too. This worker-level bootstep runs a thread in the worker's main process that drains every
destination every ``OUTBOX_WORKER_LOOP_SECONDS``, straight from PostgreSQL: one broker being down
then delays only its own deliveries (the relay pauses that destination and goes on with the other).

It is a safety net beside the kick and the sweep, never a second publisher of the same row: claims
use ``SKIP LOCKED`` and a lease, so the loop, the tasks and other workers share the work.
"""

from __future__ import annotations

import logging
import threading

from celery import bootsteps
from django.conf import settings
from django.db import close_old_connections, connection

logger = logging.getLogger(__name__)


class OutboxRelayLoopStep(bootsteps.StartStopStep):
    label = "outbox relay loop"

    def __init__(self, parent, **kwargs) -> None:  # type: ignore[no-untyped-def] - Celery's signature
        super().__init__(parent, **kwargs)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, parent) -> None:  # type: ignore[no-untyped-def]
        if settings.OUTBOX_WORKER_LOOP_SECONDS <= 0:
            return
        self._thread = threading.Thread(target=self._run, name="outbox-relay-loop", daemon=True)
        self._thread.start()

    def stop(self, parent) -> None:  # type: ignore[no-untyped-def]
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        from messaging.relay import outbox_relay_drain

        try:
            while not self._stopping.wait(settings.OUTBOX_WORKER_LOOP_SECONDS):
                for destination in settings.OUTBOX_DESTINATIONS:
                    close_old_connections()
                    try:
                        result = outbox_relay_drain(destination=destination)
                    except Exception:
                        logger.exception("outbox relay loop: %s drain failed", destination)
                        continue
                    if result.delivered or result.failed:
                        logger.info(
                            "outbox relay loop %s: %d delivered, %d failed",
                            destination,
                            result.delivered,
                            result.failed,
                            extra={"destination": destination},
                        )
        finally:
            connection.close()
