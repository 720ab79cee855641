"""``/metrics``: Prometheus text for this process or, in multiprocess mode, for all processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (Procfile, docker compose), gunicorn workers, the Celery
worker and the Kafka consumer all write their samples into that directory and a scrape sums
them, so counters incremented by the relay and the consumers show up here. The outbox backlog
gauges are refreshed from the database at scrape time: a scrape always sees the current backlog,
even when no relay is running to report it.

Access: a scrape is answered only to a client address inside ``METRICS_ALLOWED_CIDRS`` (loopback
by default) or to a request carrying ``Authorization: Bearer <METRICS_TOKEN>``; anyone else gets
403. Behind a reverse proxy the client address is the proxy's: use the token there.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging

import prometheus_client
from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from prometheus_client import multiprocess

from ops.selectors import outbox_backlog
from tourapp import metrics

logger = logging.getLogger(__name__)


def outbox_gauges_refresh() -> None:
    """Set the backlog and oldest-age gauges per destination from the outbox table."""
    for destination, stats in outbox_backlog().items():
        metrics.OUTBOX_BACKLOG.labels(destination=destination).set(stats["pending"])
        metrics.OUTBOX_OLDEST_AGE.labels(destination=destination).set(stats["oldest_pending_age_seconds"] or 0)


def metrics_render() -> bytes:
    try:
        outbox_gauges_refresh()
    except Exception:  # the database being down must not hide every other metric
        logger.warning("outbox gauges not refreshed", exc_info=True)
    if settings.PROMETHEUS_MULTIPROC_DIR:
        registry = prometheus_client.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=settings.PROMETHEUS_MULTIPROC_DIR)
    else:
        registry = prometheus_client.REGISTRY
    return prometheus_client.generate_latest(registry)


def metrics_client_allowed(*, remote_addr: str, authorization: str) -> bool:
    """True for the configured bearer token, or a client address inside an allowed network."""
    token = settings.METRICS_TOKEN
    scheme, _, presented = authorization.partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode()):
        return True
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(cidr, strict=False) for cidr in settings.METRICS_ALLOWED_CIDRS)


def metrics_view(request: HttpRequest) -> HttpResponse:
    allowed = metrics_client_allowed(
        remote_addr=request.META.get("REMOTE_ADDR", ""), authorization=request.headers.get("Authorization", "")
    )
    if not allowed:
        return HttpResponseForbidden("metrics: client not allowed\n", content_type="text/plain")
    return HttpResponse(metrics_render(), content_type=prometheus_client.CONTENT_TYPE_LATEST)
