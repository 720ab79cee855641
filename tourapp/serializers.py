"""Input serializer base shared by the apps' APIs: strict about fields, cheap to refuse.

Guarantee: a body with fields the serializer does not declare is a 400 whose error names at most
``UNKNOWN_FIELDS_LISTED`` of them (each cut to ``UNKNOWN_FIELD_NAME_SHOWN`` characters) plus a
count of the rest, so a flood of unknown fields gets a small answer, not an echo of the body.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from django.db import models
from rest_framework import serializers

UNKNOWN_FIELDS_LISTED = 20
UNKNOWN_FIELD_NAME_SHOWN = 64

# Set by the server from the tour, the tier and the authenticated user; a client sending one is told so.
SERVER_OWNED_FIELDS = frozenset({"total_price", "price", "status", "user", "user_id", "owner", "currency"})


class StrictInputSerializer(serializers.Serializer):
    """Rejects any field it does not declare, so a client cannot slip in a price or an owner."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            declared = self.fields
            unknown = [name for name in data if name not in declared]
            if unknown:
                raise serializers.ValidationError(_unknown_fields_error(unknown))
        return super().to_internal_value(data)


def _unknown_fields_error(unknown: list[str]) -> dict[str, list[str]]:
    errors = {
        _shown(name): [
            "This field is set by the server and cannot be sent." if name in SERVER_OWNED_FIELDS else "Unknown field."
        ]
        for name in islice(unknown, UNKNOWN_FIELDS_LISTED)
    }
    if len(unknown) > UNKNOWN_FIELDS_LISTED:
        errors["non_field_errors"] = [f"{len(unknown) - UNKNOWN_FIELDS_LISTED} more unknown field(s) not listed."]
    return errors


def _shown(name: str) -> str:
    return name if len(name) <= UNKNOWN_FIELD_NAME_SHOWN else name[:UNKNOWN_FIELD_NAME_SHOWN] + "…"


def model_max_length(model: type[models.Model], field: str) -> int:
    """The ``max_length`` of a model field, so an input serializer refuses what the column cannot hold."""
    max_length = getattr(model._meta.get_field(field), "max_length", None)
    assert max_length is not None, f"{model.__name__}.{field} has no max_length"
    return int(max_length)
