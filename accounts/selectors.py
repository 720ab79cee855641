"""Reads of user accounts. Usernames and emails match whatever their case (the database keeps them
unique that way, see ``accounts/migrations/0001``)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User


def user_get_by_username(*, username: str) -> User | None:
    """The user whose username equals ``username`` ignoring case, or None."""
    return get_user_model().objects.filter(username__iexact=username).first()


def user_username_taken(*, username: str) -> bool:
    return get_user_model().objects.filter(username__iexact=username).exists()


def user_email_taken(*, email: str) -> bool:
    return get_user_model().objects.filter(email__iexact=email).exclude(email="").exists()
