"""Monitoring as code: the Grafana dashboard and Prometheus alert rules in deploy/ match /metrics,
and every labelled counter exists at 0 from process start (so ``increase()`` sees the first failure)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.ops.conftest import ROOT, subprocess_env

DASHBOARD = ROOT / "deploy" / "grafana" / "tourapp.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
# Series Prometheus makes itself (not in any /metrics page).
SYNTHETIC = {"up"}
_METRIC = re.compile(r"\b((?:tourapp|django)_[a-z0-9_]+|up)\b")


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def _alert_rules() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _referenced(exprs: list[str]) -> set[str]:
    return {name for expr in exprs for name in _METRIC.findall(expr)} - SYNTHETIC


_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def _series_names(client) -> set[str]:
    """Every series name /metrics exposes, including those of families without a child yet
    (a labelled gauge such as the Kafka lag has samples only once a consumer reported)."""
    client.get("/health/live")  # one response through the middleware: the HTTP series exist
    response = client.get("/metrics")
    assert response.status_code == 200
    names = set()
    for family in text_string_to_metric_families(response.content.decode()):
        names |= {sample.name for sample in family.samples}
        names |= {family.name + suffix for suffix in _SUFFIXES.get(family.type, ())}
    return names


def test_the_monitoring_files_parse_and_every_alert_says_what_and_how_bad():
    assert _dashboard_exprs()
    rules = _alert_rules()
    assert len(rules) >= 5
    for rule in rules:
        assert rule["alert"].startswith("Tourapp") and rule["expr"].strip()
        assert rule["labels"]["severity"] in {"page", "warn"}
        assert rule["annotations"]["summary"]


@pytest.mark.django_db
@pytest.mark.parametrize("source", ["grafana", "prometheus"])
def test_every_metric_the_dashboard_and_the_alerts_use_is_in_metrics(client, source):
    # given the metric names the file references
    exprs = _dashboard_exprs() if source == "grafana" else [rule["expr"] for rule in _alert_rules()]
    referenced = _referenced(exprs)
    assert referenced, "no metric found in the file"
    # when /metrics is scraped
    exposed = _series_names(client)
    # then every one of them is there (as a sample name: *_total, *_bucket, gauges)
    assert sorted(referenced - exposed) == []


def test_every_labelled_counter_exists_at_zero_in_a_fresh_process(tmp_path: Path, settings):
    # given a fresh process that only loaded Django (as every process of `make run` does)
    code = "import django; django.setup()\n"
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=subprocess_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="tests.settings"),
        check=True,
        timeout=120,
    )
    # when its samples are collected as /metrics does in multiprocess mode
    import prometheus_client
    from prometheus_client import multiprocess

    registry = prometheus_client.CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }
    # then failed and dead exist at 0 for every destination, before any failure
    for destination in settings.OUTBOX_DESTINATIONS:
        for name in ("tourapp_outbox_delivered_total", "tourapp_outbox_failed_total", "tourapp_outbox_dead_total"):
            assert samples[(name, (("destination", destination),))] == 0
    # and the consumer counters exist for every registered handler on both transports
    from messaging.registry import handlers_all

    for handler in handlers_all():
        for transport in ("rabbitmq", "kafka"):
            key = (("handler", handler.name), ("transport", transport))
            assert samples[("tourapp_consumer_dead_lettered_total", key)] == 0
            assert ("tourapp_consumer_processed_total", key) in samples
