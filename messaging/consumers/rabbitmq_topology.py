"""RabbitMQ topology for the consumers: one durable queue per handler routed to RabbitMQ.

Per handler ``h`` (``Q = <EVENTS_QUEUE_PREFIX><h>.tour_events``):

* ``Q`` bound to the ``tour_events`` topic exchange with ``tour.booked.*`` / ``tour.cancelled.*``
  (the handler's event types), ``x-dead-letter-exchange`` = ``<exchange>.dlx`` so a broker-side
  dead-letter (quorum delivery limit, ``reject(requeue=False)``) also lands in the DLQ;
* ``Q.retry.<ms>ms``: one queue per step of ``EVENTS_RETRY_DELAYS`` with a queue TTL that
  dead-letters back to ``Q`` (no head-of-line blocking between different delays);
* ``Q.dlq`` bound to ``<exchange>.dlx`` with routing key ``Q``.

Queue arguments are explicit (``x-queue-type``; for quorum ``x-delivery-limit``,
``x-dead-letter-strategy=at-least-once`` which needs ``x-overflow=reject-publish``) so RabbitMQ
3.x and 4.x (which caps quorum redeliveries at 20 by default) behave alike. Declaring is
idempotent: the same arguments every time (RabbitMQ refuses a re-declare that differs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from kombu import Exchange, Queue, binding

from messaging.amqp import events_connection, events_exchange
from messaging.events import binding_patterns_for
from messaging.registry import TRANSPORT_RABBITMQ, Handler, handler_get, handlers_for_transport


def queue_name_for(handler_name: str) -> str:
    return f"{settings.EVENTS_QUEUE_PREFIX}{handler_name}.tour_events"


def dead_letter_exchange() -> Exchange:
    return Exchange(f"{settings.EVENTS_EXCHANGE}.dlx", type="direct", durable=True)


def _type_arguments() -> dict[str, Any]:
    if settings.EVENTS_QUORUM_QUEUES:
        return {
            "x-queue-type": "quorum",
            "x-delivery-limit": settings.EVENTS_DELIVERY_LIMIT,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
    return {"x-queue-type": "classic"}


def retry_queue_names(handler_name: str) -> list[str]:
    main = queue_name_for(handler_name)
    return [f"{main}.retry.{round(delay * 1000)}ms" for delay in settings.EVENTS_RETRY_DELAYS]


def handler_queues(handler: Handler) -> tuple[Queue, Queue, list[Queue]]:
    """(main queue, DLQ, retry queues) for one handler, with every argument explicit."""
    main = queue_name_for(handler.name)
    dlx = dead_letter_exchange()
    main_queue = Queue(
        main,
        bindings=[
            binding(events_exchange(), routing_key=pattern)
            for pattern in binding_patterns_for(*sorted(handler.event_types))
        ],
        durable=True,
        queue_arguments={**_type_arguments(), "x-dead-letter-exchange": dlx.name, "x-dead-letter-routing-key": main},
    )
    dlq = Queue(f"{main}.dlq", exchange=dlx, routing_key=main, durable=True, queue_arguments=_type_arguments())
    retries = [
        Queue(
            name,
            durable=True,
            queue_arguments={
                **_type_arguments(),
                "x-message-ttl": max(round(delay * 1000), 1),
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": main,
            },
        )
        for name, delay in zip(retry_queue_names(handler.name), settings.EVENTS_RETRY_DELAYS, strict=True)
    ]
    return main_queue, dlq, retries


def topology_declare(channel: Any, handlers: Sequence[Handler]) -> None:
    """Declare exchanges, queues and bindings (idempotent; same arguments every time)."""
    events_exchange()(channel).declare()
    dead_letter_exchange()(channel).declare()
    for handler in handlers:
        main, dlq, retries = handler_queues(handler)
        for queue in (main, dlq, *retries):
            queue(channel).declare()


def handlers_selected(handler_names: Sequence[str] | None) -> list[Handler]:
    """The named handlers, or by default those routed to RabbitMQ."""
    if handler_names:
        return [handler_get(name) for name in handler_names]
    return handlers_for_transport(TRANSPORT_RABBITMQ)


def rabbitmq_topology_setup(*, handler_names: Sequence[str] | None = None) -> list[str]:
    """Declare the topology for the selected (default: routed) handlers; returns the main queue names.

    The worker does this when it starts; call it before publishing when no consumer has run yet
    (a topic exchange drops messages that match no queue).
    """
    handlers = handlers_selected(handler_names)
    with events_connection() as connection:
        topology_declare(connection.default_channel, handlers)
    return [queue_name_for(handler.name) for handler in handlers]
