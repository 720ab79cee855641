"""Input and output shapes of the auth endpoints. Every string is capped at what its column (or
the password hasher) takes, so an over-long value is a cheap 400, never a database error."""

from __future__ import annotations

from django.contrib.auth.models import User
from rest_framework import serializers

from accounts.validators import PASSWORD_MAX_LENGTH
from tourapp.serializers import StrictInputSerializer, model_max_length

USERNAME_MAX_LENGTH = model_max_length(User, "username")


class TokenObtainInputSerializer(StrictInputSerializer):
    username = serializers.CharField(max_length=USERNAME_MAX_LENGTH)
    password = serializers.CharField(
        style={"input_type": "password"}, trim_whitespace=False, max_length=PASSWORD_MAX_LENGTH
    )


class TokenOutputSerializer(serializers.Serializer):
    token = serializers.CharField()


class RegisterInputSerializer(StrictInputSerializer):
    username = serializers.RegexField(
        r"^[\w.@+-]+\Z",
        max_length=USERNAME_MAX_LENGTH,
        error_messages={"invalid": "Letters, digits and @/./+/-/_ only."},
    )
    email = serializers.EmailField(max_length=model_max_length(User, "email"))
    password = serializers.CharField(
        style={"input_type": "password"}, trim_whitespace=False, write_only=True, max_length=PASSWORD_MAX_LENGTH
    )


class RegisterOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField()
    token = serializers.CharField()
