"""Celery worker heartbeats in Redis: how readiness knows at least one worker is alive.

Each worker process writes ``hostname -> now`` into one sorted set every
``WORKER_HEARTBEAT_SECONDS`` and removes itself on a clean shutdown. A worker counts as alive
when its last beat is younger than three intervals, so a killed worker disappears within ~6 s.
We chose this over ``celery inspect ping``: a ping waits for its whole timeout when no worker
answers, needs the broker to be up (the RabbitMQ check already covers that), and is answered
by any worker on the vhost, whereas this key lives under the cache's ``KEY_PREFIX``.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.core.cache import cache
from django_redis import get_redis_connection

logger = logging.getLogger(__name__)

_KEY = "ops:worker-heartbeats"


def _key() -> str:
    return cache.make_key(_KEY)


def alive_window_seconds() -> float:
    return 3 * settings.WORKER_HEARTBEAT_SECONDS


def worker_heartbeat_write(*, hostname: str) -> None:
    """Record that ``hostname`` is alive now and forget workers silent for a long time."""
    redis = get_redis_connection("default")
    now = time.time()
    pipe = redis.pipeline()
    pipe.zadd(_key(), {hostname: now})
    pipe.zremrangebyscore(_key(), "-inf", now - 100 * alive_window_seconds())
    pipe.execute()


def worker_heartbeat_clear(*, hostname: str) -> None:
    get_redis_connection("default").zrem(_key(), hostname)


def workers_alive() -> list[str]:
    """Hostnames of the workers whose last heartbeat is inside the alive window."""
    redis = get_redis_connection("default")
    members = redis.zrangebyscore(_key(), time.time() - alive_window_seconds(), "+inf")
    return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in members)


class HeartbeatThread(threading.Thread):
    """Daemon thread in the worker's main process; Redis errors are logged and retried."""

    def __init__(self, *, hostname: str) -> None:
        super().__init__(name="tourapp-heartbeat", daemon=True)
        self.hostname = hostname
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                worker_heartbeat_write(hostname=self.hostname)
            except Exception:  # the worker must outlive a Redis outage; readiness reports it
                logger.warning("worker heartbeat write failed", exc_info=True)
            self._stop_event.wait(settings.WORKER_HEARTBEAT_SECONDS)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5)
        try:
            worker_heartbeat_clear(hostname=self.hostname)
        except Exception:  # shutting down anyway; the beat expires by itself
            logger.warning("worker heartbeat clear failed", exc_info=True)
