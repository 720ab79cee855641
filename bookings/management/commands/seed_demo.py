"""``manage.py seed_demo``: demo tours, a demo customer with an API token, and an admin. Idempotent."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from bookings.demo import demo_seed


class Command(BaseCommand):
    help = "Create demo tours (incl. 'Paris City Tour' at 199.99 USD), a demo user with a token and an admin."

    def handle(self, *args: Any, **options: Any) -> None:
        username, admin_username = settings.DEMO_USERNAME, settings.DEMO_ADMIN_USERNAME
        result = demo_seed(
            username=username,
            password=settings.DEMO_PASSWORD,
            admin_username=admin_username,
            admin_password=settings.DEMO_ADMIN_PASSWORD,
        )
        self.stdout.write("Created: " + (", ".join(result.created) if result.created else "nothing (already seeded)"))
        self.stdout.write(f"Demo user '{username}' API token: {result.token}")
        self.stdout.write("  curl -H 'Authorization: Token <token>' http://127.0.0.1:8000/api/bookings/")
        self.stdout.write("  Tours   http://127.0.0.1:8000/api/tours/paris-city-tour/")
        self.stdout.write("  Docs    http://127.0.0.1:8000/api/docs/")
        self.stdout.write(f"  Admin   http://127.0.0.1:8000/admin/ (user '{admin_username}')")
