from django.apps import AppConfig


class MessagingConfig(AppConfig):
    name = "messaging"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Admin for the consumers' records (inbox, dead letters); messaging/admin.py is the relay's.
        from messaging import admin_consumers  # noqa: F401 - registers ModelAdmins
