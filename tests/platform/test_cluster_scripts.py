"""scripts/cluster, checked without starting a cluster: syntax, rendered configs, the settings it prints.

Rendering runs the real script (``scripts/cluster render DIR``) into a temporary directory: what
is asserted is what the nodes would read. Starting the cluster is ``bench/cluster_node_loss.py``'s
job (minutes, six broker processes), not this module's.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "scripts" / "cluster"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(CLUSTER), *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def _properties(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("cluster")
    done = _run("render", str(target))
    assert done.returncode == 0, done.stderr
    return target


def test_the_cluster_script_is_valid_bash() -> None:
    # given / when
    done = subprocess.run(["bash", "-n", str(CLUSTER)], capture_output=True, text=True, timeout=30)
    # then
    assert done.returncode == 0, done.stderr


def test_an_unknown_node_is_refused_with_usage_and_exit_2() -> None:
    # when
    done = _run("kill", "rabbit9")
    # then
    assert done.returncode == 2
    assert "rabbit1 rabbit2 rabbit3 kafka1 kafka2 kafka3" in done.stderr


def test_three_rabbitmq_nodes_get_distinct_names_ports_and_directories_on_loopback(rendered: Path) -> None:
    # given the three rendered nodes
    envs = [_properties(rendered / f"rabbit{n}" / "rabbitmq-env.conf") for n in (1, 2, 3)]
    confs = [_properties(rendered / f"rabbit{n}" / "rabbitmq.conf") for n in (1, 2, 3)]
    # then each has its own node name, ports and state directories
    assert len({e["NODENAME"] for e in envs}) == 3
    assert all(e["NODENAME"].startswith(f"rabbit{n}@") for n, e in zip((1, 2, 3), envs, strict=True))
    assert [c["listeners.tcp.default"] for c in confs] == [f"127.0.0.1:{p}" for p in (5681, 5682, 5683)]
    assert [c["management.tcp.port"] for c in confs] == ["15681", "15682", "15683"]
    assert [c["distribution.listener.port_range.min"] for c in confs] == ["25681", "25682", "25683"]
    assert len({e["MNESIA_BASE"] for e in envs}) == 3
    assert len({e["LOG_BASE"] for e in envs}) == 3
    # and every listener is on loopback, with the partition handling chosen on purpose
    for conf in confs:
        assert conf["management.tcp.ip"] == "127.0.0.1"
        assert conf["distribution.listener.interface"] == "127.0.0.1"
        assert conf["cluster_partition_handling"] == "pause_minority"
    assert all(e["export ERL_EPMD_ADDRESS"] == "127.0.0.1" for e in envs)


def test_three_kafka_nodes_form_one_kraft_quorum_with_durable_defaults(rendered: Path) -> None:
    # given the three rendered brokers
    props = [_properties(rendered / f"kafka{n}" / "server.properties") for n in (1, 2, 3)]
    # then they are combined broker+controllers with distinct ids and ports, one voter set
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    assert all(p["process.roles"] == "broker,controller" for p in props)
    voters = {p["controller.quorum.voters"] for p in props}
    assert voters == {"1@127.0.0.1:19192,2@127.0.0.1:19193,3@127.0.0.1:19194"}
    assert [p["listeners"] for p in props] == [
        f"PLAINTEXT://127.0.0.1:{b},CONTROLLER://127.0.0.1:{c}"
        for b, c in ((19092, 19192), (19093, 19193), (19094, 19194))
    ]
    # and a write acknowledged with acks=all survives the loss of any one broker
    for p in props:
        assert p["default.replication.factor"] == "3"
        assert p["min.insync.replicas"] == "2"
        assert p["unclean.leader.election.enable"] == "false"
        assert p["offsets.topic.replication.factor"] == "3"
        assert p["auto.create.topics.enable"] == "false"
    assert len({p["log.dirs"] for p in props}) == 3


def test_the_printed_application_settings_list_every_node_and_turn_on_quorum_queues() -> None:
    # when
    done = _run("env")
    # then
    assert done.returncode == 0, done.stderr
    settings = dict(line.split("=", 1) for line in done.stdout.splitlines())
    urls = settings["CELERY_BROKER_URL"].strip("'").split(";")
    assert [u.rsplit("@", 1)[1] for u in urls] == [f"127.0.0.1:{p}/tourapp" for p in (5681, 5682, 5683)]
    assert settings["EVENTS_AMQP_URL"] == settings["CELERY_BROKER_URL"]
    assert settings["EVENTS_QUORUM_QUEUES"] == "true"
    assert settings["CELERY_TASK_DEFAULT_QUEUE_TYPE"] == "quorum"
    assert settings["KAFKA_BOOTSTRAP_SERVERS"].split(",") == [f"127.0.0.1:{p}" for p in (19092, 19093, 19094)]


def _celery_conf(**env: str) -> dict[str, str]:
    code = (
        "import json, django; django.setup(); from tourapp.celery import app; "
        "print(json.dumps({k: str(app.conf[k]) for k in ('task_default_queue_type', 'task_default_exchange_type')}))"
    )
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "python"), "-c", code],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tourapp.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_celery_quorum_queues_get_a_topic_exchange_so_countdowns_are_delayed_in_the_broker() -> None:
    # when Celery's queue is a quorum queue (the cluster settings)
    conf = _celery_conf(CELERY_TASK_DEFAULT_QUEUE_TYPE="quorum")
    # then its exchange is a topic exchange: native delayed delivery routes only through those
    assert conf == {"task_default_queue_type": "quorum", "task_default_exchange_type": "topic"}
    # and a classic single-node setup keeps the direct exchange it already declared
    assert _celery_conf(CELERY_TASK_DEFAULT_QUEUE_TYPE="classic")["task_default_exchange_type"] == "direct"
