"""Password validators of our own (``AUTH_PASSWORD_VALIDATORS``)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

PASSWORD_MAX_LENGTH = 128


class MaximumLengthValidator:
    """Refuse passwords longer than ``max_length``: hashing is bounded, nobody types more."""

    def __init__(self, max_length: int = PASSWORD_MAX_LENGTH) -> None:
        self.max_length = max_length

    def validate(self, password: str, user: Any = None) -> None:
        if len(password) > self.max_length:
            raise ValidationError(
                f"This password is too long: at most {self.max_length} characters.", code="password_too_long"
            )

    def get_help_text(self) -> str:
        return f"Your password can't be longer than {self.max_length} characters."
