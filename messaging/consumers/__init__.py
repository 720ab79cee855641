"""Event consumers: RabbitMQ (hosted in the Celery worker) and Kafka (``run_kafka_consumer``).

Both parse with :mod:`messaging.envelope`, deduplicate and apply through :mod:`messaging.inbox`,
and dead-letter what cannot be handled through :mod:`messaging.dead_letters`.
"""
