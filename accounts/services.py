"""Account writes: registration and API tokens.

Guarantees:

- **One account per name and per email, whatever the case.** Checked first for a friendly 400,
  and enforced by unique functional indexes (``accounts/migrations/0001``), so two racing
  registrations cannot both win; the loser gets the same 400.
- **Brute force locks out.** Token logins go through ``authenticate(request=...)``, so django-axes
  counts their failures with the admin's; a locked-out client gets ``LoginLockedOut`` (429).
  Rates per client address and per username are the API throttles' (``accounts.api.views``).
"""

from __future__ import annotations

from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from rest_framework.authtoken.models import Token

from accounts.lockout import LOCKED_OUT_CODE, LOCKED_OUT_MESSAGE
from accounts.selectors import user_email_taken, user_username_taken
from tourapp.exceptions import DomainError, integrity_constraint_name

USERNAME_TAKEN = "This username is already taken."
EMAIL_TAKEN = "An account with this email already exists."
# Unique indexes of accounts/migrations/0001 -> the field their violation is about.
_UNIQUE_INDEX_FIELDS = {
    "auth_user_username_upper_uniq": ("username", USERNAME_TAKEN),
    "auth_user_username_key": ("username", USERNAME_TAKEN),
    "auth_user_email_upper_uniq": ("email", EMAIL_TAKEN),
}


class RegistrationInvalid(DomainError):
    code = "invalid"


class InvalidCredentials(DomainError):
    code = "invalid_credentials"


class LoginLockedOut(DomainError):
    code = LOCKED_OUT_CODE
    http_status = 429


def user_register(*, username: str, email: str, password: str) -> tuple[User, Token]:
    """Create a customer account and its API token (the documented way for a new user to get one)."""
    user_model = get_user_model()
    candidate = user_model(username=username, email=email)
    try:
        validate_password(password, user=candidate)
    except ValidationError as exc:
        raise RegistrationInvalid("The password is too weak.", fields={"password": list(exc.messages)}) from None
    fields: dict[str, list[str]] = {}
    if user_username_taken(username=username):
        fields["username"] = [USERNAME_TAKEN]
    if user_email_taken(email=email):
        fields["email"] = [EMAIL_TAKEN]
    if fields:
        raise RegistrationInvalid(next(iter(fields.values()))[0], fields=fields)
    try:
        with transaction.atomic():
            user = user_model.objects.create_user(username=username, email=email, password=password)
            token = Token.objects.create(user=user)
    except IntegrityError as exc:
        # A concurrent registration took the name or the email between the check and the insert.
        field, message = _UNIQUE_INDEX_FIELDS.get(integrity_constraint_name(exc) or "", ("username", USERNAME_TAKEN))
        raise RegistrationInvalid(message, fields={field: [message]}) from None
    return user, token


def auth_token_obtain(*, request: HttpRequest, username: str, password: str) -> Token:
    """The API token of the user with these credentials (created on first use).

    ``request`` is the Django request: django-axes reads the client address from it and marks it
    locked out; the username matches whatever its case (``accounts.backends``).
    """
    user = authenticate(request=request, username=username, password=password)
    if user is None:
        if getattr(request, "axes_locked_out", False):
            raise LoginLockedOut(LOCKED_OUT_MESSAGE)
        raise InvalidCredentials("Unable to log in with the provided credentials.")
    token, _ = Token.objects.get_or_create(user=user)
    return token
