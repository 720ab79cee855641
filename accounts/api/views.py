"""Auth endpoints: parse input, call one service, shape output. One class per operation.

Both are throttled per client address and per username (``RedisScopedRateThrottle``,
``RedisUsernameRateThrottle``; rates in ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``), and token
logins also lock out after repeated failures (django-axes, ``accounts.services.auth_token_obtain``).
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.serializers import (
    RegisterInputSerializer,
    RegisterOutputSerializer,
    TokenObtainInputSerializer,
    TokenOutputSerializer,
)
from accounts.services import auth_token_obtain, user_register
from tourapp.throttling import RedisScopedRateThrottle, RedisUsernameRateThrottle

_ERROR = OpenApiResponse(OpenApiTypes.OBJECT)  # the Error shape and a description per status: tourapp/openapi.py
_TOKEN_EXAMPLE = "<40 hexadecimal characters>"  # noqa: S105 - a placeholder in the docs, not a token
_THROTTLED_EXAMPLE = OpenApiExample(
    "Too many attempts",
    value={"error": {"code": "throttled", "message": "Request was throttled. Expected available in 42 seconds."}},
    response_only=True,
    status_codes=[429],
)


class TokenObtainApi(APIView):
    """Exchange your username and password for an API token, then send it on every request as the
    header Authorization: Token <token>. Attempts are limited per client address and per username,
    and repeated failures lock the username and the address out for a while (429)."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [RedisScopedRateThrottle, RedisUsernameRateThrottle]
    throttle_scope = "auth_token"
    throttle_scope_username = "auth_token_username"

    @extend_schema(
        operation_id="auth_token_obtain",
        summary="Exchange username and password for an API token",
        request=TokenObtainInputSerializer,
        examples=[
            OpenApiExample(
                "Credentials", value={"username": "ada", "password": "correct horse battery"}, request_only=True
            ),
            OpenApiExample("A token", value={"token": _TOKEN_EXAMPLE}, response_only=True, status_codes=[200]),
            OpenApiExample(
                "Wrong username or password",
                value={
                    "error": {
                        "code": "invalid_credentials",
                        "message": "Unable to log in with the provided credentials.",
                    }
                },
                response_only=True,
                status_codes=[400],
            ),
            _THROTTLED_EXAMPLE,
        ],
        responses={200: TokenOutputSerializer, 400: _ERROR, 429: _ERROR},
    )
    def post(self, request: Request) -> Response:
        serializer = TokenObtainInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token = auth_token_obtain(request=request._request, **serializer.validated_data)
        return Response(TokenOutputSerializer({"token": token.key}).data)


class RegisterApi(APIView):
    """Create an account and get its API token at once. Usernames and emails are unique whatever
    their case. Attempts are limited per client address and per username (429)."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [RedisScopedRateThrottle, RedisUsernameRateThrottle]
    throttle_scope = "auth_register"
    throttle_scope_username = "auth_register_username"

    @extend_schema(
        operation_id="auth_register",
        summary="Create an account and get its API token",
        request=RegisterInputSerializer,
        examples=[
            OpenApiExample(
                "A new account",
                value={"username": "ada", "email": "ada@example.com", "password": "correct horse battery"},
                request_only=True,
            ),
            OpenApiExample(
                "Registered",
                value={"id": 12, "username": "ada", "email": "ada@example.com", "token": _TOKEN_EXAMPLE},
                response_only=True,
                status_codes=[201],
            ),
            OpenApiExample(
                "Username taken",
                value={
                    "error": {
                        "code": "invalid",
                        "message": "This username is already taken.",
                        "fields": {"username": ["This username is already taken."]},
                    }
                },
                response_only=True,
                status_codes=[400],
            ),
            _THROTTLED_EXAMPLE,
        ],
        responses={201: RegisterOutputSerializer, 400: _ERROR, 429: _ERROR},
    )
    def post(self, request: Request) -> Response:
        serializer = RegisterInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user, token = user_register(**serializer.validated_data)
        body = {"id": user.pk, "username": user.get_username(), "email": user.email, "token": token.key}
        return Response(RegisterOutputSerializer(body).data, status=status.HTTP_201_CREATED)
