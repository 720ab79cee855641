"""docker-compose.yml and the Dockerfile cannot rot: validated by compose itself and by the spec.

Docker does not run here, so the file is checked three ways: Debian's ``docker-compose config -q``
(the real parser, with interpolation), the Compose Specification JSON schema (vendored beside this
file from docker-compose 1.29.2, Apache-2.0, so the check needs no network), and assertions on the
structure this project relies on.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.urls import resolve
from jsonschema import Draft201909Validator

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
BACKING = {"postgres", "redis", "rabbitmq", "kafka"}
APP_PROCESSES = {"web", "worker", "beat", "kafka-consumer"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def _settings_env_names() -> set[str]:
    """Every environment variable tourapp/settings.py reads (env.str("NAME"), env.int("NAME"), ...)."""
    source = (ROOT / "tourapp/settings.py").read_text()
    return set(re.findall(r"""env(?:\.\w+)?\(\s*["']([A-Z0-9_]+)["']""", source))


def test_docker_compose_itself_accepts_the_file():
    # given Debian's docker-compose (scripts/services up installs it)
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed: run `scripts/services up` (or `apt-get install docker-compose`)")
    # when
    result = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "config", "-q"], capture_output=True, text=True, timeout=60, check=False
    )
    # then
    assert result.returncode == 0, result.stderr


def test_compose_file_is_valid_against_the_compose_specification(compose):
    # given the Compose Specification schema
    schema = json.loads((Path(__file__).parent / "compose_spec.json").read_text())
    # when
    errors = sorted(Draft201909Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    # then
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message[:300]}" for e in errors)


def test_backing_services_are_the_official_images_with_healthchecks(compose):
    services = compose["services"]
    assert services.keys() >= BACKING | APP_PROCESSES
    for name in BACKING:
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert services["rabbitmq"]["image"].startswith("rabbitmq:3-management")
    assert "127.0.0.1:15672:15672" in services["rabbitmq"]["ports"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft: no ZooKeeper anywhere
    assert not any("zookeeper" in str(svc.get("image", "")) for svc in services.values())


def test_kafka_topic_is_created_with_three_partitions_before_the_consumer_starts(compose):
    services = compose["services"]
    init = services["kafka-init"]
    assert "kafka_topics_ensure" in init["command"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["kafka-consumer"]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"
    assert int(services["kafka"]["environment"]["KAFKA_NUM_PARTITIONS"]) == 3


def test_the_four_app_processes_share_one_image_and_wait_for_healthy_services(compose):
    services = compose["services"]
    builds = {(services[name].get("build"), services[name].get("image")) for name in APP_PROCESSES}
    assert builds == {(".", "tourapp:local")}
    for name in APP_PROCESSES:
        depends = services[name]["depends_on"]
        for backing in BACKING:
            assert depends[backing]["condition"] == "service_healthy", f"{name} -> {backing}"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["environment"]["TOURAPP_ROLE"]


def test_web_healthcheck_probes_a_real_health_endpoint(compose):
    test = " ".join(compose["services"]["web"]["healthcheck"]["test"])
    path = re.search(r"http://127\.0\.0\.1:8000(/health/\w+)", test).group(1)
    assert resolve(path).url_name in {"health-live", "health-ready"}
    assert compose["services"]["worker"]["healthcheck"]["test"]


def test_app_environment_uses_only_names_that_settings_read_and_no_real_secret(compose):
    env = compose["services"]["web"]["environment"]
    known = _settings_env_names() | {"TOURAPP_ROLE", "DJANGO_ENV"}
    assert {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "KAFKA_BOOTSTRAP_SERVERS", "DJANGO_SECRET_KEY"} <= set(
        env
    )
    assert not set(env) - known, f"unknown settings: {set(env) - known}"
    assert re.fullmatch(r"\$\{DJANGO_SECRET_KEY:-dev-only-[\w-]+\}", env["DJANGO_SECRET_KEY"])


def test_flower_is_optional_behind_a_profile(compose):
    assert compose["services"]["flower"]["profiles"] == ["flower"]


def test_dockerfile_builds_a_slim_non_root_image_with_static_files():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    assert "pip install -r requirements.txt" in dockerfile
    assert "collectstatic --noinput" in dockerfile
    users = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert users and users[-1] not in {"root", "0"}
    assert (ROOT / ".dockerignore").read_text().count(".venv")


def test_every_published_port_is_bound_to_loopback(compose):
    published = {name: svc.get("ports", []) for name, svc in compose["services"].items()}
    assert any(published.values())
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_compose_seeds_demo_data_without_a_known_superuser(compose):
    # given the one-shot migrate service, which runs in production mode
    migrate = compose["services"]["migrate"]
    command = " ".join(migrate["command"])
    assert migrate["environment"]["DJANGO_ENV"] == "production"
    # then seed_demo runs forced (production: no superuser, a random demo password) and no
    # demo password is configured anywhere
    assert re.search(r"manage\.py seed_demo --force\b", command)
    for svc in compose["services"].values():
        assert not {"DEMO_PASSWORD", "DEMO_ADMIN_PASSWORD"} & set(svc.get("environment") or {})
