"""Publishers: hand a batch of outbox messages to one broker and report what it confirmed.

``base`` holds the contract (``OutboundMessage``, ``PublishOutcome``, the ``Publisher``
protocol); ``rabbitmq`` and ``kafka`` implement it; ``rabbitmq_frames`` and
``kafka_batch_sender`` are the two fast paths built on library internals, each behind a
``version_gate``. A publisher never touches the database.
"""
