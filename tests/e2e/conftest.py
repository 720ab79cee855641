"""One started system per test module, against the pytest-django test database.

The processes inherit this session's unique names (exchange, topic, queues, Redis prefix: see the
root conftest) and get ``DATABASE_URL`` pointing at the test database. Tests that touch the
database from here use ``@pytest.mark.django_db(transaction=True)`` so their rows are committed
and visible to the processes. On a failed test the tail of every process log is printed.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.figures import AmqpTap, KafkaTap
from tests.e2e.harness import System, services
from tests.support.database import subprocess_database_url


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="module")
def system(django_db_setup: None) -> Iterator[System]:
    """web + worker + beat + kafka consumer, shared by the tests of one module.

    Logs go to a directory of their own under /tmp (pytest's tmp dirs are rotated by every run on
    the machine); its path is printed with the log tails of a failed test.
    """
    log_dir = Path(tempfile.mkdtemp(prefix="tourapp-e2e-"))
    started = System(database_url=subprocess_database_url(), log_dir=log_dir)
    with started:
        yield started
    services("up")  # whatever a scenario stopped is back for the next module


@pytest.fixture(autouse=True)
def _print_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    failed = any(
        getattr(request.node, f"rep_{w}", None) and getattr(request.node, f"rep_{w}").failed for w in ("setup", "call")
    )
    if failed and "system" in request.fixturenames:
        print(request.getfixturevalue("system").dump_logs(80))


@pytest.fixture
def amqp_tap(system: System) -> Iterator[AmqpTap]:
    tap = AmqpTap(system.exchange)
    yield tap
    services("up")
    tap.close()


@pytest.fixture
def kafka_tap(system: System) -> Iterator[KafkaTap]:
    tap = KafkaTap(system.topic)
    yield tap
    tap.close()


@pytest.fixture
def make_users(db: None):  # type: ignore[no-untyped-def]
    """Create ``n`` users with API tokens (ORM: committed, since e2e tests are transactional)."""
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    def make(n: int) -> list[str]:
        tokens = []
        for _ in range(n):
            name = f"e2e-{uuid.uuid4().hex[:10]}"
            user = get_user_model().objects.create_user(name, f"{name}@example.com", "e2e-password-123")
            tokens.append(Token.objects.create(user=user).key)
        return tokens

    return make


@pytest.fixture
def make_departures(db: None):  # type: ignore[no-untyped-def]
    """Create ``n`` future departures of one tour with ``capacity`` seats each; returns their ids."""
    from availability.tests.factories import DepartureFactory, TourFactory

    def make(n: int, capacity: int = 1000) -> list[int]:
        tour = TourFactory(slug=f"e2e-{uuid.uuid4().hex[:10]}", name="Paris City Tour")
        return [DepartureFactory(tour=tour, capacity=capacity).id for _ in range(n)]

    return make
