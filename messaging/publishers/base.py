"""The publisher contract: what the relay hands a broker and what it gets back.

A publisher never touches the database. It returns a ``PublishOutcome``:

- ``delivered``: the broker took responsibility for these (RabbitMQ ``basic.ack`` without a
  ``basic.return``; Kafka future succeeded with ``acks=all``);
- ``failed``: the broker refused these (``basic.nack``, ``basic.return`` = unroutable, a
  non-retriable Kafka error). The relay counts an attempt for each;
- ``unavailable``: set when the broker could not be reached or did not answer in time. Every
  message neither delivered nor failed is then *undecided*: the relay retries it later without
  counting an attempt, so an outage never burns attempts.

Only transport conditions are "unavailable". A programming error (an ``AssertionError`` from a
send, anything unexpected) is a failure that counts attempts, so it ends in ``dead`` instead of
being retried forever.

Both publishers keep their connection between batches (one per worker process) and drop it on
any transport error; the next batch reconnects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Protocol


class OutboundMessage(NamedTuple):
    """One claimed delivery, ready for the wire (see the wire contract in ARCHITECTURE.md).

    A named tuple because the relay builds one per row claimed (cost: docs/performance.md)."""

    delivery_id: int
    event_id: str
    event_type: str
    routing_key: str
    message_key: str
    body: bytes
    headers: dict[str, str]
    correlation_id: str


@dataclass(slots=True)
class PublishOutcome:
    delivered: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    unavailable: str | None = None


class Publisher(Protocol):
    """``publish`` = ``complete(begin(...))``. ``begin`` hands a batch to the broker client and
    returns a handle without waiting for the broker; ``complete`` waits for that batch's outcome.
    The relay begins the next batches before completing batch *n*, so the wire never idles between batches."""

    def publish(self, messages: list[OutboundMessage]) -> PublishOutcome: ...

    def begin(self, messages: list[OutboundMessage]) -> object: ...

    def complete(self, handle: object) -> PublishOutcome: ...

    def close(self) -> None: ...
