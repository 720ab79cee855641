"""``/metrics``: Prometheus text for this process or, in multiprocess mode, for all processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (Procfile, docker compose), gunicorn workers, the Celery
worker and the Kafka consumer all write their samples into that directory and a scrape sums
them, so counters incremented by the relay and the consumers show up here. The outbox backlog
gauges are refreshed from the database at scrape time: a scrape always sees the current backlog,
even when no relay is running to report it.
"""

from __future__ import annotations

import logging

import prometheus_client
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import multiprocess

from tourapp import metrics
from tourapp.ops.selectors import outbox_backlog

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


def metrics_view(request: HttpRequest) -> HttpResponse:
    return HttpResponse(metrics_render(), content_type=prometheus_client.CONTENT_TYPE_LATEST)
