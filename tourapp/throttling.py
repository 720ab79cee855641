"""Request throttling counted in Redis with one ``INCR`` per request.

DRF's ``ScopedRateThrottle`` keeps, per client, the list of every request time in the window and
reads and rewrites the whole list on each request: its cost grows with the rate allowed. This
keeps DRF's scopes, rates (``DEFAULT_THROTTLE_RATES``), cache keys and 429 answers, but counts in
fixed windows that start at a client's first request: ``INCR`` + ``EXPIRE NX`` in one round trip,
whatever the rate. A client may get up to twice its rate across the end of a window, the usual
price of fixed windows. Redis unavailable: the request is allowed (bookings do not stop because
the cache did).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.cache import cache
from rest_framework.throttling import ScopedRateThrottle

logger = logging.getLogger(__name__)


class RedisScopedRateThrottle(ScopedRateThrottle):
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
    from django_redis import get_redis_connection

    pipe = get_redis_connection("default").pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, seconds, nx=True)
    return int(pipe.execute()[0])
