"""Input and output shapes of the auth endpoints. Every string is capped at what its column (or
the password hasher) takes, so an over-long value is a cheap 400, never a database error."""

from __future__ import annotations

from django.contrib.auth.models import User
from rest_framework import serializers

from accounts.validators import PASSWORD_MAX_LENGTH
from tourapp.serializers import StrictInputSerializer, model_max_length

USERNAME_MAX_LENGTH = model_max_length(User, "username")


class TokenObtainInputSerializer(StrictInputSerializer):
    """Your account's credentials."""

    username = serializers.CharField(max_length=USERNAME_MAX_LENGTH, help_text="Your username (any case).")
    password = serializers.CharField(
        style={"input_type": "password"},
        trim_whitespace=False,
        max_length=PASSWORD_MAX_LENGTH,
        help_text="Your password, exactly as set (spaces count).",
    )


class TokenOutputSerializer(serializers.Serializer):
    """Your API token."""

    token = serializers.CharField(help_text="Send it on every request as the header Authorization: Token <token>.")


class RegisterInputSerializer(StrictInputSerializer):
    """A new account."""

    username = serializers.RegexField(
        r"^[\w.@+-]+\Z",
        max_length=USERNAME_MAX_LENGTH,
        error_messages={"invalid": "Letters, digits and @/./+/-/_ only."},
        help_text="Letters, digits and @ . + - _ only; unique whatever its case.",
    )
    email = serializers.EmailField(
        max_length=model_max_length(User, "email"),
        help_text="Where booking confirmations go by default; unique whatever its case.",
    )
    password = serializers.CharField(
        style={"input_type": "password"},
        trim_whitespace=False,
        write_only=True,
        max_length=PASSWORD_MAX_LENGTH,
        help_text="At least 8 characters, at most 128; not too common, not all digits, not like the username.",
    )


class RegisterOutputSerializer(serializers.Serializer):
    """The new account and its API token."""

    id = serializers.IntegerField(help_text="The account's id.")
    username = serializers.CharField(help_text="The username, as registered.")
    email = serializers.EmailField(help_text="The email, as registered.")
    token = serializers.CharField(help_text="Send it on every request as the header Authorization: Token <token>.")
