"""Handler registry: domain apps register event handlers here from ``AppConfig.ready`` (and the
schemas of the event types they own in :mod:`messaging.schemas`).

``messaging`` never imports a domain app; it only calls what was registered. Which transport
feeds a handler is decided by ``settings.EVENT_HANDLER_ROUTES`` (``rabbitmq``, ``kafka`` or
``both``), read when asked, never at import time.

A handler's ``handle_batch(events)`` runs INSIDE the inbox transaction, only for events this
handler has not applied yet (see :mod:`messaging.inbox`). It writes its side-effect records and
defers anything that leaves the process with ``transaction.on_commit``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from messaging.envelope import Event

TRANSPORT_RABBITMQ = "rabbitmq"
TRANSPORT_KAFKA = "kafka"
ROUTE_BOTH = "both"
# Fed by no transport: the default of a handler registered with ``default_route=ROUTE_OFF`` when
# ``EVENT_HANDLER_ROUTES`` does not name it (one that moves money runs only where routed explicitly).
ROUTE_OFF = "off"

BatchHandler = Callable[[Sequence[Event[Any]]], None]


@dataclass(frozen=True)
class Handler:
    name: str
    event_types: frozenset[str]
    handle_batch: BatchHandler
    # Payload attributes this handler cannot work without; a message lacking one is dead-lettered.
    required_fields: tuple[str, ...] = ()
    # The route when ``EVENT_HANDLER_ROUTES`` does not name this handler.
    default_route: str = TRANSPORT_RABBITMQ

    def accepts(self, event_type: str) -> bool:
        return event_type in self.event_types

    @property
    def route(self) -> str:
        return settings.EVENT_HANDLER_ROUTES.get(self.name, self.default_route)

    def fed_by(self, transport: str) -> bool:
        return self.route in (transport, ROUTE_BOTH)


_handlers: dict[str, Handler] = {}


def register(
    *,
    name: str,
    event_types: Iterable[str],
    handle_batch: BatchHandler | None = None,
    handle: Callable[[Event[Any]], None] | None = None,
    required_fields: Iterable[str] = (),
    default_route: str = TRANSPORT_RABBITMQ,
) -> Handler:
    """Register (or re-register, idempotently) a handler. Give ``handle_batch`` or ``handle``."""
    if (handle_batch is None) == (handle is None):
        raise ValueError("give exactly one of handle_batch or handle")
    if handle is not None:
        single = handle

        def handle_batch(events: Sequence[Event[Any]]) -> None:
            for event in events:
                single(event)

    assert handle_batch is not None
    handler = Handler(
        name=name,
        event_types=frozenset(event_types),
        handle_batch=handle_batch,
        required_fields=tuple(required_fields),
        default_route=default_route,
    )
    _handlers[name] = handler
    return handler


def unregister(name: str) -> None:
    _handlers.pop(name, None)


def handler_get(name: str) -> Handler:
    try:
        return _handlers[name]
    except KeyError:
        raise LookupError(f"no event handler named {name!r}; registered: {sorted(_handlers)}") from None


def handlers_all() -> list[Handler]:
    return [_handlers[name] for name in sorted(_handlers)]


def handlers_for_transport(transport: str) -> list[Handler]:
    """Handlers that ``EVENT_HANDLER_ROUTES`` sends this transport's messages to."""
    return [handler for handler in handlers_all() if handler.fed_by(transport)]
