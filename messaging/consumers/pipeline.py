"""The steps every consumer takes, whatever the transport: parse, check, apply once, isolate failures.

For one batch of received messages and a handler:

1. parse each message into an :class:`~messaging.envelope.Event`; one that cannot be parsed is
   invalid;
2. the handler must accept the event's type. On a queue of its own (RabbitMQ) a message of
   another type is invalid; on a log every handler reads (Kafka) it is simply not this handler's;
3. the handler's required fields must be present, else the message is invalid;
4. the valid events are applied in ONE inbox transaction (dedup, side-effect writes, on-commit
   task dispatch);
5. if that transaction fails, the events are applied one by one (up to ``attempts`` tries each),
   so only the culprit fails.

What to do with the outcome is the transport's (:class:`Transport`): ``done`` for what was applied
or found duplicate, called only after its inbox transaction committed (ack / offset commit);
``invalid`` with the reason (to the DLQ at once: retrying cannot help); ``failed`` for an event
that failed every try (RabbitMQ: the retry ladder; Kafka: the DLQ). Nothing here raises for a bad
message or a failing handler, except the errors the transport lists in ``reraise`` (Kafka retries
the whole batch on a database outage instead of calling every event poison).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from messaging.envelope import Event, InvalidMessage, event_parse
from messaging.inbox import InboxResult, event_log_scope, inbox_process
from messaging.registry import Handler
from tourapp.correlation import correlation_scope

logger = logging.getLogger(__name__)

M = TypeVar("M")


@dataclass(slots=True)
class Received(Generic[M]):
    """One message as a transport received it: the transport's own object and what parsing needs."""

    message: M
    body: bytes
    headers: Mapping[str, Any]
    routing_key: str = ""
    message_id: str = ""
    correlation_id: str = ""


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message can never be handled, and what is known of it (for the dead letter)."""

    reason: str
    event_type: str = ""
    event_id: str = ""
    correlation_id: str = ""

    @classmethod
    def of(cls, event: Event, reason: str) -> Rejection:
        return cls(reason, event.event_type, str(event.event_id or ""), event.correlation_id)


class Transport(Protocol[M]):
    """What differs between transports; see the module docstring for when each is called."""

    name: str  # messaging.registry.TRANSPORT_*

    @property
    def attempts(self) -> int:
        """Tries per event once its batch was split (RabbitMQ: 1, its retry ladder does the rest)."""
        ...

    @property
    def reraise(self) -> tuple[type[BaseException], ...]:
        """Errors that are not the event's fault: they propagate to the transport's loop."""
        ...

    def done(self, handler: Handler, items: Sequence[Received[M]], result: InboxResult) -> None: ...

    def invalid(self, handler: Handler | None, item: Received[M], rejection: Rejection) -> None: ...

    def failed(self, handler: Handler, item: Received[M], event: Event, error: str) -> None: ...


class Pipeline(Generic[M]):
    """Runs the steps for one transport; holds nothing else, so it is cheap to make per batch."""

    def __init__(self, transport: Transport[M]) -> None:
        self.transport = transport

    def handle_queue(self, handler: Handler, items: Sequence[Received[M]]) -> None:
        """Messages from ``handler``'s own queue: a type it does not handle is invalid."""
        parsed = self._parse(handler, items)
        self._apply(handler, self._for_handler(handler, parsed, own_queue=True))

    def handle_log(self, handlers: Sequence[Handler], items: Sequence[Received[M]]) -> None:
        """Records of a log every handler reads: each handler takes the types it handles."""
        parsed = self._parse(None, items)
        for handler in handlers:
            self._apply(handler, self._for_handler(handler, parsed, own_queue=False))

    # ------------------------------------------------------------------ checks
    def _parse(self, handler: Handler | None, items: Sequence[Received[M]]) -> list[tuple[Received[M], Event]]:
        parsed = []
        for item in items:
            try:
                event = event_parse(
                    body=item.body,
                    headers=item.headers,
                    routing_key=item.routing_key,
                    message_id=item.message_id,
                    correlation_id=item.correlation_id,
                )
            except InvalidMessage as exc:
                rejection = Rejection(exc.reason, exc.event_type, exc.event_id, item.correlation_id)
                with correlation_scope(item.correlation_id or None):
                    self.transport.invalid(handler, item, rejection)
                continue
            parsed.append((item, event))
        return parsed

    def _for_handler(
        self, handler: Handler, parsed: Sequence[tuple[Received[M], Event]], *, own_queue: bool
    ) -> list[tuple[Received[M], Event]]:
        """The events ``handler`` takes; those it should take but cannot are invalid."""
        mine = []
        for item, event in parsed:
            if not handler.accepts(event.event_type):
                if own_queue:
                    self._invalid(handler, item, event, f"handler {handler.name} does not handle {event.event_type}")
                continue
            missing = event.missing(handler.required_fields)
            if missing:
                self._invalid(handler, item, event, f"missing fields for handler {handler.name}: {', '.join(missing)}")
                continue
            mine.append((item, event))
        return mine

    def _invalid(self, handler: Handler, item: Received[M], event: Event, reason: str) -> None:
        with correlation_scope(event.correlation_id or None):
            self.transport.invalid(handler, item, Rejection.of(event, reason))

    # ------------------------------------------------------------------ applying
    def _apply(self, handler: Handler, valid: Sequence[tuple[Received[M], Event]]) -> None:
        if len(valid) > 1:
            try:
                with correlation_scope(None, handler=handler.name):
                    result = inbox_process(
                        handler=handler, events=[event for _, event in valid], transport=self.transport.name
                    )
            except self.transport.reraise:
                raise
            except Exception:
                logger.warning("batch of %d failed for %s; handling its messages one by one", len(valid), handler.name)
            else:
                self.transport.done(handler, [item for item, _ in valid], result)
                return
        for item, event in valid:
            self._apply_one(handler, item, event)

    def _apply_one(self, handler: Handler, item: Received[M], event: Event) -> None:
        attempts = max(1, self.transport.attempts)
        error = ""
        with event_log_scope(event, handler=handler.name):
            for attempt in range(1, attempts + 1):
                try:
                    result = inbox_process(handler=handler, events=[event], transport=self.transport.name)
                except self.transport.reraise:
                    raise
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"
                    logger.warning(
                        "handler %s failed on %s (attempt %d/%d): %s",
                        handler.name,
                        event.dedup_key,
                        attempt,
                        attempts,
                        error,
                        exc_info=True,
                    )
                    if attempt < attempts:
                        time.sleep(min(0.05 * 2 ** (attempt - 1), 1.0))  # a brief hiccup gets a chance to pass
                    continue
                self.transport.done(handler, [item], result)
                return
            self.transport.failed(handler, item, event, error)
