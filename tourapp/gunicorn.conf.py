"""gunicorn settings for the web process: our logging (JSON or console) and Prometheus multiprocess.

Used as ``gunicorn tourapp.wsgi -c tourapp/gunicorn.conf.py`` (Procfile, Dockerfile, docker compose).
Bind address and worker count stay on the command line / environment.
"""

import os
import sys
from pathlib import Path

# Imported here, not in the hook: importing inside the arbiter's SIGCHLD handler can re-enter.
from prometheus_client import multiprocess

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tourapp.settings")

from tourapp import settings as _settings  # after sys.path and DJANGO_SETTINGS_MODULE are set above

_handler = {"handlers": ["default"], "propagate": False}
# gunicorn's own error and access logs go through the same handler, filter and formatter as Django's.
logconfig_dict = {
    **_settings.LOGGING,
    "loggers": {
        **_settings.LOGGING["loggers"],
        "gunicorn.error": {**_handler, "level": _settings.LOG_LEVEL},
        "gunicorn.access": {**_handler, "level": "INFO"},
    },
}
accesslog = "-"
# Sync workers (gunicorn's default, set on purpose): a process serves one request at a time, so
# requests never queue for one interpreter lock, and no worker hoards keep-alive connections as a
# gthread worker does (measured against gthread: docs/performance.md). Put a buffering proxy
# (nginx) in front, as gunicorn advises for sync workers, so slow clients never hold a worker.
# Scale with WEB_CONCURRENCY.
worker_class = "sync"
# Long requests are a bug here (the API never waits for brokers); keep the default-ish timeout.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))


def child_exit(server, worker):  # gunicorn hook: a dead worker's live gauges must not linger
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
