"""messaging.amqp: connections to a multi-node events broker fail over to a node that answers.

Real RabbitMQ (the single node of ``scripts/services``) stands for the live node; the dead node is
a loopback port held bound but not listening, so a connect to it is refused.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from messaging import amqp
from messaging.amqp import FailoverConnection, amqp_urls, events_connection


@pytest.fixture
def dead_node_url(settings) -> Iterator[str]:
    live = amqp_urls(settings.EVENTS_AMQP_URL)[0]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        port = sock.getsockname()[1]
        scheme, rest = live.split("://", 1)
        credentials, _, path = rest.partition("@")
        vhost = path.partition("/")[2]
        yield f"{scheme}://{credentials}@127.0.0.1:{port}/{vhost}"


@pytest.fixture(autouse=True)
def _no_remembered_nodes() -> Iterator[None]:
    amqp._preferred.clear()
    yield
    amqp._preferred.clear()


def test_a_fail_fast_connect_tries_the_next_node_when_the_first_is_dead(settings, dead_node_url) -> None:
    # given a two-node URL whose first node refuses connections
    live = amqp_urls(settings.EVENTS_AMQP_URL)[0]
    settings.EVENTS_AMQP_URL = f"{dead_node_url};{live}"
    conn = events_connection(heartbeat=0)
    try:
        # when the relay connects with no retry budget (its own "fail fast")
        conn.ensure_connection(max_retries=0)
        # then it is connected, to the live node
        assert conn.connected
        assert conn.port == amqp.Connection(live).port
    finally:
        conn.release()


def test_the_next_connection_starts_at_the_node_that_answered_last(settings, dead_node_url) -> None:
    # given a connection that had to skip the dead first node
    live = amqp_urls(settings.EVENTS_AMQP_URL)[0]
    settings.EVENTS_AMQP_URL = f"{dead_node_url};{live}"
    with events_connection(heartbeat=0) as first:
        first.ensure_connection(max_retries=0)
    # when the process opens its next connection
    second = events_connection(heartbeat=0)
    # then it starts at the live node, and still knows the other one as an alternate
    assert second.port == amqp.Connection(live).port
    assert len(second.alt) == 2
    second.release()


def test_all_nodes_dead_still_fails_within_the_budget(settings, dead_node_url) -> None:
    # given two nodes that both refuse
    settings.EVENTS_AMQP_URL = f"{dead_node_url};{dead_node_url}"
    conn = events_connection(heartbeat=0, connect_timeout=1)
    # when / then: a zero budget means one round over the nodes, then the error (no endless retry)
    with pytest.raises(Exception):  # noqa: B017 - kombu's OperationalError or the socket error
        conn.ensure_connection(max_retries=0)
    conn.release()


def test_a_single_url_gives_a_plain_connection(settings) -> None:
    # given / when
    conn = events_connection()
    # then
    assert not isinstance(conn, FailoverConnection)
    assert amqp_urls("amqp://a//; amqp://b//") == ["amqp://a//", "amqp://b//"]
