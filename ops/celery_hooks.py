"""Hooks into Celery processes (worker, beat): our logging config and the worker heartbeat.

A worker started as root says so in one WARNING line (Celery's eight-line warning is filtered).

Connected from ``OpsConfig.ready()``. Celery's Django fix-up runs ``django.setup()`` while the
worker/beat loads its modules, which is before Celery configures logging and before the worker
is ready, so both receivers are in place in time.
"""

from __future__ import annotations

import logging
import logging.config
import os
from typing import Any

from celery import signals
from django.conf import settings

from ops.heartbeat import HeartbeatThread

logger = logging.getLogger(__name__)
_heartbeat: HeartbeatThread | None = None


def _use_django_logging(**_kwargs: Any) -> None:
    """Any receiver of ``setup_logging`` makes Celery leave logging alone: use ``LOGGING``."""
    logging.config.dictConfig(settings.LOGGING)
    logging.captureWarnings(True)  # Celery's start-up warnings become log lines like the rest


def _start_heartbeat(sender: Any = None, **_kwargs: Any) -> None:
    global _heartbeat  # one heartbeat thread per worker process, started by a signal
    hostname = getattr(sender, "hostname", None) or "worker"
    _heartbeat = HeartbeatThread(hostname=hostname)
    _heartbeat.start()
    logger.info("worker heartbeat started", extra={"worker": hostname})
    if os.geteuid() == 0:  # Celery's own multi-line warning about it is filtered in tourapp/celery.py
        logger.warning("worker runs as root: acceptable on a development machine, never in production")


def _stop_heartbeat(**_kwargs: Any) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()


def connect() -> None:
    signals.setup_logging.connect(_use_django_logging, weak=False, dispatch_uid="ops.logging")
    signals.worker_ready.connect(_start_heartbeat, weak=False, dispatch_uid="ops.heartbeat.start")
    signals.worker_shutdown.connect(_stop_heartbeat, weak=False, dispatch_uid="ops.heartbeat.stop")
