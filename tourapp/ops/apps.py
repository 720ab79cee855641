from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Health checks, metrics, the operations dashboard and the Celery process hooks."""

    name = "tourapp.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        import os

        from django.conf import settings
        from health_check.plugins import plugin_dir

        from tourapp.ops import celery_hooks, health

        # As django-health-check's own contrib apps do: register once, at app load.
        for backend in health.READINESS_CHECKS:
            plugin_dir.register(backend)
        celery_hooks.connect()
        if settings.PROMETHEUS_MULTIPROC_DIR:  # every process writes its samples there
            os.makedirs(settings.PROMETHEUS_MULTIPROC_DIR, exist_ok=True)
