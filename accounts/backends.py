"""Username/password authentication where the username matches whatever its case.

Safe because usernames are unique case-insensitively in the database, so "Alice" and "alice" are
one account: a user who types their name in another case logs in, nobody else does.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.http import HttpRequest

from accounts.selectors import user_get_by_username


class CaseInsensitiveModelBackend(ModelBackend):
    def authenticate(
        self, request: HttpRequest | None, username: str | None = None, password: str | None = None, **kwargs: Any
    ) -> User | None:
        if username is None:
            username = kwargs.get(get_user_model().USERNAME_FIELD)
        if username is None or password is None:
            return None
        user = user_get_by_username(username=username)
        if user is None:
            # Hash anyway, as ModelBackend does: an unknown username costs the same time as a wrong password.
            get_user_model()().set_password(password)
            return None
        if user.check_password(password) and self.user_can_authenticate(user):
            return user
        return None
