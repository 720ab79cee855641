"""Settings for the test suite: the real settings, with names unique to this test session.

The exchange, topic, consumer group, queue prefix and Redis prefix are made unique per session
(and written to ``os.environ``, so processes the tests start inherit them): two test runs on one
machine, or a test run beside ``make run``, never consume each other's messages.
"""

import os
import uuid

_SESSION = uuid.uuid4().hex[:8]
for _name, _value in {
    "TOURAPP_TESTING": "1",
    "EVENTS_EXCHANGE": f"tour_events.test.{_SESSION}",
    "EVENTS_QUEUE_PREFIX": f"test.{_SESSION}.",
    "KAFKA_TOPIC": f"tour_events.test.{_SESSION}",
    "KAFKA_CONSUMER_GROUP": f"tourapp.test.{_SESSION}",
    "REDIS_KEY_PREFIX": f"tourapp.test.{_SESSION}",
    "CELERY_TASK_DEFAULT_QUEUE": f"celery.test.{_SESSION}",
    "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
}.items():
    os.environ.setdefault(_name, _value)

from tourapp.settings import *  # noqa: E402, F403 - the real settings, read after the names above
