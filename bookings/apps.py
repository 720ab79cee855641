from django.apps import AppConfig


class BookingsConfig(AppConfig):
    name = "bookings"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from availability import handlers as availability_handlers
        from bookings import event_schema

        event_schema.register()
        # availability sits below bookings and cannot name these events: bookings wires its handler.
        availability_handlers.register(
            seats_added_by=[event_schema.TOUR_BOOKED], seats_removed_by=[event_schema.TOUR_CANCELLED]
        )
