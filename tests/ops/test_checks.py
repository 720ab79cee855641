"""System checks: a mistyped or out-of-range setting fails ``manage.py check`` naming the setting."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from tests.ops.conftest import ROOT


def _errors(settings_changes: dict[str, object], settings) -> str:
    for name, value in settings_changes.items():
        setattr(settings, name, value)
    with pytest.raises(SystemCheckError) as raised:
        call_command("check")
    return str(raised.value)


def test_the_development_settings_pass_every_check():
    call_command("check")  # raises SystemCheckError on any error


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"OUTBOX_DESTINATIONS": ["rabbitmq", "kafak"]}, "OUTBOX_DESTINATIONS contains 'kafak'"),
        ({"OUTBOX_DESTINATIONS": []}, "OUTBOX_DESTINATIONS is empty"),
        ({"OUTBOX_DESTINATIONS": ["kafka", "kafka"]}, "OUTBOX_DESTINATIONS repeats a destination"),
        (
            {"EVENT_HANDLER_ROUTES": {"notifications": "rabit", "availability": "kafka"}},
            "NOTIFICATIONS_TRANSPORT (EVENT_HANDLER_ROUTES['notifications']) is 'rabit'",
        ),
        ({"LOG_FORMAT": "jsn"}, "LOG_FORMAT is 'jsn'"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL is 'LOUD'"),
        ({"CELERY_TASK_DEFAULT_QUEUE_TYPE": "quorom"}, "CELERY_TASK_DEFAULT_QUEUE_TYPE is 'quorom'"),
        ({"OUTBOX_BATCH_SIZE": 0}, "OUTBOX_BATCH_SIZE is 0"),
        ({"API_MAX_PAGE_SIZE": 0}, "API_MAX_PAGE_SIZE is 0"),
        ({"OUTBOX_WORKER_LOOP_SECONDS": -1.0}, "OUTBOX_WORKER_LOOP_SECONDS is -1.0"),
        ({"EVENTS_RETRY_DELAYS": [1.0, 0.0]}, "EVENTS_RETRY_DELAYS is [1.0, 0.0]"),
        ({"OUTBOX_BACKOFF_MAX_SECONDS": 0.5, "OUTBOX_BACKOFF_BASE_SECONDS": 1.0}, "is below OUTBOX_BACKOFF_BASE"),
        ({"KAFKA_MIN_INSYNC_REPLICAS": 2, "KAFKA_REPLICATION_FACTOR": 1}, "KAFKA_MIN_INSYNC_REPLICAS (2) exceeds"),
        ({"KAFKA_BOOTSTRAP_SERVERS": ["localhost"]}, "KAFKA_BOOTSTRAP_SERVERS is ['localhost']"),
    ],
)
def test_a_wrong_setting_fails_the_check_naming_it_and_what_is_expected(settings, changes, expected):
    # when
    message = _errors(changes, settings)
    # then
    assert expected in message
    assert "HINT: expected" in message


def test_a_route_to_both_transports_and_an_outbox_to_kafka_only_are_valid(settings):
    settings.EVENT_HANDLER_ROUTES = {"notifications": "both", "availability": "kafka"}
    settings.OUTBOX_DESTINATIONS = ["kafka"]
    call_command("check")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("OUTBOX_DESTINATIONS", "rabbitmq,kafak", "OUTBOX_DESTINATIONS contains 'kafak'"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL"),
    ],
)
def test_manage_py_check_exits_non_zero_on_a_typo_in_the_environment(variable, value, expected):
    # given a typo in one variable, with the real settings module
    env = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "tourapp.settings", variable: value}
    # when
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    # then: the check names the setting (no traceback from the logging setup)
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
