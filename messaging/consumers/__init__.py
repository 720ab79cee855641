"""Event consumers: one pipeline, two transports (RabbitMQ in the Celery worker, Kafka in ``run_kafka_consumer``).

Guarantees, both transports alike:

* at-least-once into the inbox, effectively once per handler: :mod:`messaging.inbox` removes
  the duplicates (redelivery, replay, both transports at once);
* a message is acked (RabbitMQ) or its offset committed (Kafka) only after the inbox
  transaction that applied it, or found it duplicate, committed, or after its dead-letter or
  retry copy was confirmed by the broker;
* a message that can never be handled (malformed, unknown type, missing field, too big) goes to
  the transport's DLQ with the reason, and gets a ``DeadLetter`` row (:mod:`messaging.dead_letters`);
  the consumer never crashes on it and never loops on it. A handler that keeps failing ends there
  too, after bounded retries.

Modules:

* :mod:`.pipeline`: the transport-independent steps (parse, accepts, required fields, one inbox
  transaction per batch, split on failure) and the ``Transport`` protocol the transports plug in;
* :mod:`.rabbitmq`: kombu consumers, ack, retry ladder and DLQ publishing;
  :mod:`.rabbitmq_topology`: queues, bindings and their arguments;
  :mod:`.rabbitmq_worker`: the Celery worker bootstep and the standalone loop;
* :mod:`.kafka`: poll, commit after success, rebalance, lag metrics, stop on SIGTERM;
  :mod:`.kafka_dead_letters`: the DLQ topic and its failures.

Re-publishing (retry/DLQ copies, re-drives) is in :mod:`messaging.publishers.republish`.
"""
