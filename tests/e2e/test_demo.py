"""``manage.py demo`` against a running system: one booking followed through every process.

The RabbitMQ outage part of the demo stops the broker for everyone on the machine, so it is
skipped here (``--no-outage``); the fault tests cover what an outage does.
"""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_demo_books_as_the_demo_user_and_prints_every_step_of_the_journey_in_order(system, settings):
    # given the demo data `make run` seeds
    from bookings.demo import demo_seed

    demo_seed(
        username=settings.DEMO_USERNAME,
        password=settings.DEMO_PASSWORD,
        admin_username=settings.DEMO_ADMIN_USERNAME,
        admin_password=settings.DEMO_ADMIN_PASSWORD,
    )
    out = StringIO()

    # when
    call_command("demo", "--no-outage", "--url", system.base_url, "--timeout", "60", stdout=out, no_color=True)

    # then every step is printed once, each with its time since the request was sent
    text = out.getvalue()
    print(text)
    lines = text.splitlines()
    labels = [
        "HTTP 201: booking",
        "outbox row written",
        "delivered to RabbitMQ",
        "email notification sent",
        "SMS notification sent",
        "delivered to Kafka",
        "availability read model applied",
    ]
    for label in labels:
        (line,) = [line for line in lines if label in line]
        assert line.strip().split()[1] == "ms", line
    assert "not seen within" not in text
    assert lines.index(next(line for line in lines if "HTTP 201" in line)) < lines.index(
        next(line for line in lines if "outbox row written" in line)
    )
    assert "RabbitMQ outage part skipped" in text
