"""Registration on real PostgreSQL: one account per username and per email whatever the case,
even when registrations race, and enforced by the database itself."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, transaction

from accounts.services import RegistrationInvalid, user_register

GOOD_PASSWORD = "a-long-unusual-passphrase"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("first", "second"),
    [
        (("Alice", "a1@example.com"), ("aLICE", "a2@example.com")),
        (("bob", "Bob@Example.com"), ("bobby", "bob@example.COM")),
    ],
    ids=["username", "email"],
)
def test_the_database_refuses_a_case_variant_username_or_email(first, second) -> None:
    # given
    user_model = get_user_model()
    user_model.objects.create_user(username=first[0], email=first[1])

    # when / then: even bypassing the service's checks
    with pytest.raises(IntegrityError), transaction.atomic():
        user_model.objects.create_user(username=second[0], email=second[1])


@pytest.mark.django_db
def test_accounts_without_an_email_may_be_several() -> None:
    get_user_model().objects.create_user(username="noemail1", email="")
    get_user_model().objects.create_user(username="noemail2", email="")
    assert get_user_model().objects.filter(email="").count() == 2


@pytest.mark.django_db(transaction=True)
def test_racing_registrations_of_case_variants_create_one_account_and_400_the_others() -> None:
    # given
    names = ["Racer", "racer", "RACER", "rAcEr", "racer", "Racer"]
    barrier = threading.Barrier(len(names))

    def register(index_name: tuple[int, str]) -> str:
        index, name = index_name
        try:
            barrier.wait(timeout=30)
            user_register(username=name, email=f"racer{index}@example.com", password=GOOD_PASSWORD)
            return "created"
        except RegistrationInvalid as exc:
            assert exc.fields == {"username": ["This username is already taken."]}
            return "taken"
        finally:
            connection.close()

    # when
    with ThreadPoolExecutor(max_workers=len(names)) as pool:
        outcomes = list(pool.map(register, enumerate(names)))

    # then
    assert sorted(outcomes) == ["created"] + ["taken"] * 5
    assert get_user_model().objects.filter(username__iexact="racer").count() == 1
