"""The destination pause: a circuit breaker shared by every relay through the cache.

When a broker is unreachable its destination is paused for ``OUTBOX_UNAVAILABLE_BACKOFF_SECONDS``,
doubling with each consecutive outage up to ``OUTBOX_UNAVAILABLE_BACKOFF_MAX_SECONDS``; a paused
destination is not drained, so relays do not hammer a broker that is down. The first delivered
batch clears the pause. The cache is an optimisation: with Redis down the pause is simply not
shared and every relay tries on its own; rows are never lost or counted either way.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

# Destinations this process saw unavailable: only they need the shared pause cleared on success,
# which keeps a cache round trip off every healthy batch.
_seen_unavailable: set[str] = set()


def _pause_key(destination: str) -> str:
    return f"outbox:paused:{destination}"


def _streak_key(destination: str) -> str:
    return f"outbox:unavailable-streak:{destination}"


def outbox_destination_is_paused(*, destination: str) -> bool:
    try:
        return bool(cache.get(_pause_key(destination)))
    except Exception:  # broad on purpose: the cache is an optimisation; without it every relay just tries
        return False


def outbox_destination_pause(*, destination: str) -> float:
    """Pause ``destination`` after an outage; returns the pause in seconds (the base without a cache)."""
    base = settings.OUTBOX_UNAVAILABLE_BACKOFF_SECONDS
    _seen_unavailable.add(destination)
    try:
        streak = int(cache.get(_streak_key(destination)) or 0)
        seconds = min(settings.OUTBOX_UNAVAILABLE_BACKOFF_MAX_SECONDS, base * 2**streak)
        cache.set(_streak_key(destination), streak + 1, timeout=3600)
        cache.set(_pause_key(destination), 1, timeout=max(1, round(seconds)))
    except Exception:  # broad on purpose: see outbox_destination_is_paused
        seconds = base
    return seconds


def outbox_destination_seen_unavailable(*, destination: str) -> bool:
    """Whether this process paused ``destination`` since it last resumed it."""
    return destination in _seen_unavailable


def outbox_destination_resume(*, destination: str) -> None:
    """Forget a destination's pause and outage streak (it answered again, or an operator says so)."""
    _seen_unavailable.discard(destination)
    try:
        cache.delete_many([_pause_key(destination), _streak_key(destination)])
    except Exception:  # broad on purpose: see outbox_destination_is_paused
        logger.debug("outbox: cache unavailable while resuming %s", destination, exc_info=True)
