"""DRF token authentication with a lean lookup.

Same behaviour as ``rest_framework.authentication.TokenAuthentication`` (same header, same
errors), but the token and its user are read with one hand-written statement built once per
process (``tourapp.queries.token_with_user``): compiling the ORM query on every request cost more
than the database work.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

from tourapp.queries import token_with_user


class TokenAuthentication(authentication.TokenAuthentication):
    def authenticate_credentials(self, key: str) -> tuple[Any, Token]:
        token = token_with_user(key=key)
        if token is None:
            raise exceptions.AuthenticationFailed(_("Invalid token."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("User inactive or deleted."))
        return token.user, token
