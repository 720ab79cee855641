"""Celery application. Tasks carry the correlation id in their headers (see signals below)."""

import os
import warnings

from celery import Celery, signals
from celery.exceptions import SecurityWarning

# Celery's eight-line warning about a worker running as root (every development start here, as
# root) is replaced by one log line from ops.celery_hooks; the Docker image runs unprivileged.
warnings.filterwarnings(
    "ignore", message="You're running the worker with superuser privileges", category=SecurityWarning
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tourapp.settings")

app = Celery("tourapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

CORRELATION_HEADER = "tourapp_correlation_id"


@signals.before_task_publish.connect
def _propagate_correlation_id(headers=None, **_kwargs):
    from tourapp.correlation import get_correlation_id

    cid = get_correlation_id()
    if headers is not None and cid and "correlation_id" not in headers:
        headers["correlation_id"] = cid
    # In the worker, request.correlation_id is the AMQP property (= the task id), which hides the
    # header above; our own header name survives.
    if headers is not None and cid:
        headers.setdefault(CORRELATION_HEADER, cid)


@signals.task_prerun.connect
def _enter_correlation_scope(task=None, **_kwargs):
    from tourapp.correlation import correlation_scope

    cid = (
        (getattr(task.request, CORRELATION_HEADER, None) or getattr(task.request, "correlation_id", None))
        if task
        else None
    )
    scope = correlation_scope(cid, task=task.name if task else None)
    scope.__enter__()
    task.request._tourapp_scope = scope


@signals.task_postrun.connect
def _leave_correlation_scope(task=None, **_kwargs):
    scope = getattr(task.request, "_tourapp_scope", None) if task else None
    if scope is not None:
        scope.__exit__(None, None, None)


# The RabbitMQ event consumer runs inside the worker (a kombu consumer on a thread of its own, so
# its database waits never hold up Celery's task dispatch). Named by string: it is imported when
# the worker starts, after Django is set up.
app.steps["worker"].add("messaging.consumers.rabbitmq_worker:EventConsumerStep")
# Each worker also drains the outbox itself, so a RabbitMQ outage (the Celery broker) cannot stall
# delivery to Kafka (see messaging/relay/loop.py).
app.steps["worker"].add("messaging.relay.loop:OutboxRelayLoopStep")
