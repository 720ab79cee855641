"""Demo data for ``manage.py seed_demo``: a few tours with upcoming departures, a customer and an admin.

Idempotent: rows are looked up by natural key (slug, username) and only missing ones are created;
existing passwords, prices and departures are left as they are. Running it twice changes nothing.
Without ``admin_username`` no superuser is created (production: see ``seed_demo``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from availability.models import Departure, Tour

DEPARTURES_PER_TOUR = 4
DEPARTURE_CAPACITY = 20

DEMO_TOURS = [
    ("Paris City Tour", "paris-city-tour", "Louvre, Notre-Dame and a Seine cruise.", Decimal("199.99"), "USD"),
    ("Loire Castles Day Trip", "loire-castles", "Chambord and Chenonceau in one day.", Decimal("149.00"), "EUR"),
    ("Mont-Saint-Michel Escape", "mont-saint-michel", "The abbey at low tide.", Decimal("259.50"), "EUR"),
]


@dataclass(frozen=True)
class DemoSeedResult:
    token: str
    created: list[str]


@transaction.atomic
def demo_seed(
    *, username: str, password: str, admin_username: str | None, admin_password: str | None
) -> DemoSeedResult:
    created: list[str] = []
    for name, slug, description, price, currency in DEMO_TOURS:
        tour, made = Tour.objects.get_or_create(
            slug=slug, defaults={"name": name, "description": description, "base_price": price, "currency": currency}
        )
        if made:
            created.append(f"tour {slug}")
        created += _ensure_upcoming_departures(tour)

    user_model = get_user_model()
    user = user_model.objects.filter(username=username).first()
    if user is None:
        user = user_model.objects.create_user(username=username, email="demo@example.com", password=password)
        created.append(f"user {username}")
    token, made = Token.objects.get_or_create(user=user)
    if made:
        created.append(f"token for {username}")
    if admin_username and not user_model.objects.filter(username=admin_username).exists():
        user_model.objects.create_superuser(username=admin_username, email="admin@example.com", password=admin_password)
        created.append(f"superuser {admin_username}")
    return DemoSeedResult(token=token.key, created=created)


def _ensure_upcoming_departures(tour: Tour) -> list[str]:
    """Top the tour up to ``DEPARTURES_PER_TOUR`` upcoming departures, one a week at 09:00 UTC."""
    now = timezone.now()
    upcoming = Departure.objects.filter(tour=tour, starts_at__gt=now).count()
    created = []
    day = now.date() + timedelta(days=7)
    while upcoming < DEPARTURES_PER_TOUR:
        starts_at = datetime.combine(day, time(9), tzinfo=UTC)
        if not Departure.objects.filter(tour=tour, starts_at=starts_at).exists():
            Departure.objects.create(tour=tour, starts_at=starts_at, capacity=DEPARTURE_CAPACITY)
            created.append(f"departure {tour.slug} {starts_at:%Y-%m-%d}")
            upcoming += 1
        day += timedelta(days=7)
    return created
