from django.apps import AppConfig


class AvailabilityConfig(AppConfig):
    name = "availability"
    default_auto_field = "django.db.models.BigAutoField"

    # Its event handler is registered by bookings (availability.handlers), which owns the events.
