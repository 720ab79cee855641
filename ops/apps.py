from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Health checks, metrics, the operations dashboard and the Celery process hooks."""

    name = "ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        import os

        from django.conf import settings
        from django.contrib import admin
        from health_check.plugins import plugin_dir

        from messaging.registry import handlers_all
        from ops import celery_hooks, checks, health
        from tourapp import metrics

        # As django-health-check's own contrib apps do: register once, at app load.
        for backend in health.READINESS_CHECKS:
            plugin_dir.register(backend)
        celery_hooks.connect()
        if settings.PROMETHEUS_MULTIPROC_DIR:  # every process writes its samples there
            os.makedirs(settings.PROMETHEUS_MULTIPROC_DIR, exist_ok=True)
        # After the directory exists: in multiprocess mode the zeros are written there. Handlers
        # are registered by their apps' ready(), which ran before this one (ops is listed last).
        metrics.counters_initialise(
            destinations=settings.OUTBOX_DESTINATIONS,
            handlers=[handler.name for handler in handlers_all()],
            transports=["rabbitmq", "kafka"],
        )
        checks.register_all()
        # The admin's "View site" link: the API root (the site has no HTML home page).
        admin.site.site_url = "/api/"
