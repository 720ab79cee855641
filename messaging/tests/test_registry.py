"""Handler registry: apps register from ready(); settings route handlers to transports."""

from __future__ import annotations

import pytest

from bookings.event_schema import TOUR_BOOKED
from messaging import registry


def test_domain_apps_register_their_handlers_at_startup() -> None:
    names = {handler.name for handler in registry.handlers_all()}
    assert {"notifications", "availability"} <= names


def test_routes_decide_which_transport_feeds_which_handler(settings) -> None:
    # given
    settings.EVENT_HANDLER_ROUTES = {"notifications": "rabbitmq", "availability": "kafka"}
    # when
    rabbit = {h.name for h in registry.handlers_for_transport("rabbitmq")}
    kafka = {h.name for h in registry.handlers_for_transport("kafka")}
    # then
    assert "notifications" in rabbit and "availability" not in rabbit
    assert "availability" in kafka and "notifications" not in kafka


def test_route_both_feeds_a_handler_from_both_transports(settings) -> None:
    settings.EVENT_HANDLER_ROUTES = {"notifications": "both", "availability": "kafka"}
    assert "notifications" in {h.name for h in registry.handlers_for_transport("rabbitmq")}
    assert "notifications" in {h.name for h in registry.handlers_for_transport("kafka")}


def test_register_wraps_a_per_event_handler_into_a_batch_handler() -> None:
    seen = []
    handler = registry.register(name="test-single", event_types=[TOUR_BOOKED], handle=seen.append)
    try:
        handler.handle_batch(["a", "b"])  # type: ignore[list-item]  # any object stands for an event here
        assert seen == ["a", "b"]
        assert registry.handler_get("test-single") is handler
    finally:
        registry.unregister("test-single")


def test_register_requires_exactly_one_handle_function() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        registry.register(name="bad", event_types=[TOUR_BOOKED])
