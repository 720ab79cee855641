"""Readiness checks (django-health-check backends), one per dependency the system needs.

Each check is bounded by ``HEALTH_CHECK_TIMEOUT_SECONDS`` and they run in parallel threads, so
``/health/ready`` answers in about that time even when everything is down. Nothing is cached:
every request probes again, so an outage shows at once and a recovery too.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection
from health_check.backends import BaseHealthCheckBackend
from health_check.exceptions import ServiceUnavailable


class _Check(BaseHealthCheckBackend):
    """Runs ``probe()``; any exception becomes a readable error naming what went wrong."""

    name = "check"

    def identifier(self) -> str:
        return self.name

    def probe(self) -> None:
        raise NotImplementedError

    def add_error(self, error: object, cause: object = None) -> None:
        # One log line per failing check, not a traceback on every probe of an outage.
        super().add_error(error, None)

    def check_status(self) -> None:
        try:
            self.probe()
        except ServiceUnavailable:
            raise
        except Exception as exc:  # a health check reports failures, it does not raise them
            raise ServiceUnavailable(f"{type(exc).__name__}: {exc}".strip()) from exc


class PostgresCheck(_Check):
    name = "PostgreSQL"

    def probe(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")


class RedisCheck(_Check):
    name = "Redis"

    def probe(self) -> None:
        from django_redis import get_redis_connection

        get_redis_connection("default").ping()


class RabbitMQCheck(_Check):
    name = "RabbitMQ"

    def probe(self) -> None:
        from messaging.amqp import events_connection

        conn = events_connection(connect_timeout=settings.HEALTH_CHECK_TIMEOUT_SECONDS, heartbeat=0)
        try:
            # No retry: ``connect()`` would wait 2 s and try again, readiness must answer at once.
            conn.ensure_connection(max_retries=0)
        finally:
            conn.release()


class KafkaCheck(_Check):
    name = "Kafka"

    def probe(self) -> None:
        from kafka import KafkaAdminClient

        timeout_ms = int(settings.HEALTH_CHECK_TIMEOUT_SECONDS * 1000)
        admin = KafkaAdminClient(
            bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
            client_id="tourapp-health",
            request_timeout_ms=timeout_ms,
            api_version_auto_timeout_ms=timeout_ms,
            reconnect_backoff_max_ms=200,
        )
        try:
            topics = set(admin.list_topics())
        finally:
            admin.close()
        if settings.KAFKA_TOPIC not in topics:
            raise ServiceUnavailable(f"topic {settings.KAFKA_TOPIC!r} does not exist")


class CeleryWorkerCheck(_Check):
    name = "CeleryWorker"

    def probe(self) -> None:
        from ops.heartbeat import alive_window_seconds, workers_alive

        if not workers_alive():
            raise ServiceUnavailable(
                f"no Celery worker heartbeat in the last {alive_window_seconds():g} s (is `celery worker` running?)"
            )


class OutboxCheck(_Check):
    name = "Outbox"

    def probe(self) -> None:
        from ops.selectors import outbox_backlog

        limit = settings.OUTBOX_HEALTH_MAX_AGE_SECONDS
        late = {
            destination: stats["oldest_pending_age_seconds"]
            for destination, stats in outbox_backlog().items()
            if (stats["oldest_pending_age_seconds"] or 0) > limit
        }
        if late:
            detail = ", ".join(f"{dest} oldest pending {age:.0f} s" for dest, age in sorted(late.items()))
            raise ServiceUnavailable(f"outbox backlog too old (limit {limit} s): {detail}")


READINESS_CHECKS = [PostgresCheck, RedisCheck, RabbitMQCheck, KafkaCheck, CeleryWorkerCheck, OutboxCheck]
