"""Event-schema registry: domain apps register the schemas of their event types from ready()."""

from __future__ import annotations

from typing import Any

import pytest

from messaging import schemas


class _Schema:
    def parse(self, body: Any) -> Any:
        return body

    def aggregate_key(self, payload: Any) -> str:
        return ""

    def dedup_key(self, *, event_type: str, payload: Any) -> str:
        return event_type


def test_domain_apps_register_the_schemas_of_their_event_types_at_startup() -> None:
    registered = set(schemas.event_types_all())
    assert {"tour.booked", "tour.cancelled", "payment.captured", "payment.failed", "payment.refunded"} <= registered


def test_registering_the_same_schema_again_is_harmless_but_a_second_owner_is_refused() -> None:
    # given
    mine, theirs = _Schema(), _Schema()
    schemas.register(event_types=["test.owned"], schema=mine)
    try:
        # when / then
        schemas.register(event_types=["test.owned"], schema=mine)
        assert schemas.schema_get("test.owned") is mine
        with pytest.raises(ValueError, match="already has a schema"):
            schemas.register(event_types=["test.other", "test.owned"], schema=theirs)
        assert schemas.schema_get("test.other") is None  # all or nothing
    finally:
        schemas.unregister("test.owned", "test.other")


def test_event_type_for_routing_key_matches_whole_segments_only() -> None:
    schemas.register(event_types=["test.ab"], schema=_Schema())
    try:
        assert schemas.event_type_for_routing_key("test.ab.x") == "test.ab"
        assert schemas.event_type_for_routing_key("test.abc.x") == ""
        assert schemas.event_type_for_routing_key("test") == ""
    finally:
        schemas.unregister("test.ab")
