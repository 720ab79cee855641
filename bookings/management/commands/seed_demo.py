"""``manage.py seed_demo``: demo tours, a demo customer with an API token, and an admin. Idempotent.

Development only by default: with ``DJANGO_ENV=production`` it refuses unless given ``--force``,
and then creates no superuser and gives the demo customer a random password, printed once (when
the account is created), so no known password ever exists on a production database.
"""

from __future__ import annotations

import secrets
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from bookings.demo import demo_seed


class Command(BaseCommand):
    help = "Create demo tours (incl. 'Paris City Tour' at 199.99 USD), a demo user with a token and an admin."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="Seed even with DJANGO_ENV=production (no superuser; the demo user gets a random password).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        production = settings.PRODUCTION
        if production and not options["force"]:
            raise CommandError("seed_demo refuses to run with DJANGO_ENV=production; pass --force to seed anyway.")
        username = settings.DEMO_USERNAME
        password = secrets.token_urlsafe(12) if production else settings.DEMO_PASSWORD
        admin_username = None if production else settings.DEMO_ADMIN_USERNAME
        result = demo_seed(
            username=username,
            password=password,
            admin_username=admin_username,
            admin_password=None if production else settings.DEMO_ADMIN_PASSWORD,
        )
        self.stdout.write("Created: " + (", ".join(result.created) if result.created else "nothing (already seeded)"))
        if production and f"user {username}" in result.created:
            self.stdout.write(f"Demo user '{username}' password (shown once): {password}")
        self.stdout.write(f"Demo user '{username}' API token: {result.token}")
        self.stdout.write("  curl -H 'Authorization: Token <token>' http://127.0.0.1:8000/api/bookings/")
        self.stdout.write("  Tours   http://127.0.0.1:8000/api/tours/paris-city-tour/")
        self.stdout.write("  Docs    http://127.0.0.1:8000/api/docs/")
        if admin_username:
            self.stdout.write(f"  Admin   http://127.0.0.1:8000/admin/ (user '{admin_username}')")
        else:
            self.stdout.write("  Admin   no superuser created: manage.py createsuperuser")
