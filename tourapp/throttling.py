"""Request throttling counted in Redis with one ``INCR`` per request.

DRF's ``ScopedRateThrottle`` keeps, per client, the list of every request time in the window and
reads and rewrites the whole list on each request: its cost grows with the rate allowed. This
keeps DRF's scopes, rates (``DEFAULT_THROTTLE_RATES``), cache keys and 429 answers, but counts in
fixed windows that start at a client's first request: ``INCR`` + ``EXPIRE NX`` in one round trip,
whatever the rate. A client may get up to twice its rate across the end of a window, the usual
price of fixed windows. Redis unavailable: the request is allowed (bookings do not stop because
the cache did).

``window_counts`` offers the same counters to services for business caps counted per window.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from typing import Any

from django.core.cache import cache
from rest_framework.throttling import ScopedRateThrottle

logger = logging.getLogger(__name__)


class RedisScopedRateThrottle(ScopedRateThrottle):
    """DRF's ``ScopedRateThrottle`` (per user, or per client address when anonymous), counted as above."""

    def allow_request(self, request: Any, view: Any) -> bool:
        self.scope = getattr(view, self.scope_attr, None)
        if not self.scope:
            return True
        self.rate = self.get_rate()
        num_requests, duration = self.parse_rate(self.rate)
        if num_requests is None or duration is None:
            return True
        self.num_requests, self.duration = num_requests, duration
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        self.key = cache.make_key(key)
        try:
            count = _count(self.key, seconds=duration)
        except Exception:  # broad on purpose: the cache is not allowed to refuse bookings
            logger.warning("throttle: cache unavailable, request allowed", exc_info=True)
            return True
        return count <= num_requests

    def wait(self) -> float | None:
        """Seconds until the client's window ends (the ``Retry-After`` of the 429)."""
        from django_redis import get_redis_connection

        try:
            milliseconds = get_redis_connection("default").pttl(self.key)
        except Exception:  # broad on purpose: see allow_request
            return float(self.duration or 0)
        return max(milliseconds, 0) / 1000 if milliseconds >= 0 else float(self.duration or 0)


def _count(key: str, *, seconds: int) -> int:
    """This request's number in the client's current window (the first one opens the window)."""
    return _incr([key], seconds=seconds)[0]


def _incr(keys: list[str], *, seconds: int) -> list[int]:
    from django_redis import get_redis_connection

    pipe = get_redis_connection("default").pipeline(transaction=False)
    for key in keys:
        pipe.incr(key)
        pipe.expire(key, seconds, nx=True)
    return [int(count) for count in pipe.execute()[::2]]


def window_counts(*, keys: list[str], seconds: int) -> list[int] | None:
    """Count one more event under each of ``keys`` (cache-prefixed here) in windows of ``seconds``
    opened by their first event; the new counts, in one round trip. ``INCR`` is atomic, so
    concurrent callers each get their own number. None when Redis is unavailable (callers allow)."""
    try:
        return _incr([cache.make_key(key) for key in keys], seconds=seconds)
    except Exception:  # broad on purpose: as allow_request, the cache is not allowed to refuse requests
        logger.warning("counter: cache unavailable, event allowed", exc_info=True)
        return None


class RedisUsernameRateThrottle(RedisScopedRateThrottle):
    """Per username sent in the body (``username``, case-folded), whoever sends it and from wherever:
    scope from the view's ``throttle_scope_username``. Bodies without a username are not counted here."""

    scope_attr = "throttle_scope_username"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        data = getattr(request, "data", None)
        username = data.get("username") if isinstance(data, Mapping) else None
        if not isinstance(username, str) or not username:
            return None
        # Hashed: bounded key length, and no username in the cache.
        ident = hashlib.sha256(username.casefold().encode(errors="replace")).hexdigest()[:32]
        return self.cache_format % {"scope": self.scope, "ident": ident}
