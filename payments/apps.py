from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from payments import handlers, tasks  # noqa: F401 - tasks: registered here, services enqueue them by name

        handlers.register()
