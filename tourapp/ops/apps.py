from django.apps import AppConfig


class OpsConfig(AppConfig):
    """Health checks, metrics, the operations dashboard and the Celery process hooks."""

    name = "tourapp.ops"
    label = "ops"
    verbose_name = "Operations"

    def ready(self) -> None:
        from health_check.plugins import plugin_dir

        from tourapp.ops import celery_hooks, health

        # As django-health-check's own contrib apps do: register once, at app load.
        for backend in health.READINESS_CHECKS:
            plugin_dir.register(backend)
        celery_hooks.connect()
