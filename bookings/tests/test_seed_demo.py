"""seed_demo creates the demo catalogue and accounts once; a second run changes nothing."""

from __future__ import annotations

import re
from decimal import Decimal
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.authtoken.models import Token

from availability.models import Departure, Tour

pytestmark = pytest.mark.django_db


def _snapshot() -> dict:
    return {
        "tours": list(Tour.objects.order_by("pk").values()),
        "departures": list(Departure.objects.order_by("pk").values()),
        "users": list(get_user_model().objects.order_by("pk").values("pk", "username", "password", "is_staff")),
        "tokens": list(Token.objects.order_by("pk").values()),
    }


def test_seed_demo_creates_paris_city_tour_and_a_demo_user_with_a_token() -> None:
    # when
    out = StringIO()
    call_command("seed_demo", stdout=out)

    # then
    paris = Tour.objects.get(slug="paris-city-tour")
    assert (paris.name, paris.base_price, paris.currency) == ("Paris City Tour", Decimal("199.99"), "USD")
    assert paris.departures.count() >= 3
    assert Tour.objects.count() >= 3
    demo = get_user_model().objects.get(username="demo")
    assert demo.check_password("demo-password") and demo.email == "demo@example.com"
    assert get_user_model().objects.get(username="admin").is_superuser
    assert Token.objects.get(user=demo).key in out.getvalue()


def test_seed_demo_twice_changes_nothing() -> None:
    # given
    call_command("seed_demo", stdout=StringIO())
    before = _snapshot()

    # when
    out = StringIO()
    call_command("seed_demo", stdout=out)

    # then
    assert _snapshot() == before
    assert "nothing (already seeded)" in out.getvalue()


def test_seed_demo_refuses_production_unless_forced(settings) -> None:
    # given
    settings.PRODUCTION = True
    # when / then
    with pytest.raises(CommandError, match="--force"):
        call_command("seed_demo", stdout=StringIO())
    assert not get_user_model().objects.exists()
    assert not Tour.objects.exists()


def test_forced_seed_demo_in_production_creates_no_superuser_and_no_known_password(settings) -> None:
    # given
    settings.PRODUCTION = True
    # when
    out = StringIO()
    call_command("seed_demo", "--force", stdout=out)
    # then
    users = get_user_model().objects.all()
    assert not users.filter(is_superuser=True).exists() and not users.filter(is_staff=True).exists()
    demo = users.get(username="demo")
    assert not demo.check_password("demo-password")
    assert not any(u.check_password(p) for u in users for p in ("admin-password", "demo-password", "admin", "demo"))
    (printed,) = re.findall(r"password \(shown once\): (\S+)", out.getvalue())
    assert demo.check_password(printed)
    assert Tour.objects.filter(slug="paris-city-tour").exists()

    # and: a second forced run neither prints nor changes the password
    again = StringIO()
    call_command("seed_demo", "--force", stdout=again)
    assert "shown once" not in again.getvalue()
    demo.refresh_from_db()
    assert demo.check_password(printed)
