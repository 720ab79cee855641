"""Relay liveness: a claim names the relay process that took it, so a dead relay's rows are due at once.

Each relay process holds a session-level advisory lock ``(RELAY_LOCK_NAMESPACE, token)`` on a
PostgreSQL connection of its own for as long as it lives, and every row it claims carries that
``token`` (``OutboxDelivery.claimed_by``). PostgreSQL releases the lock the moment the connection
ends: a SIGKILLed or OOM-killed process, a lost container (TCP keepalives on that connection, a few
seconds), a closed worker. The claim query (``RELAY_CLAIM_SQL``, through ``LIVE_RELAY_TOKENS_SQL``,
both in ``messaging.queries``) treats a leased row whose token has no granted lock as due again, so
another relay publishes it within its next claim, not after the lease. A live relay, however slow,
keeps its lock, and its rows are never taken before the lease ends.

The lease (``OUTBOX_CLAIM_LEASE_SECONDS``) stays the upper bound: a relay stuck longer than the lease
loses its rows, and its records are refused by the lease fence.

Not guaranteed: a live relay whose liveness connection alone breaks (database restart, network
blip) looks dead, so another relay may publish its rows while it still publishes them too. That
is a duplicate on the wire, which consumers remove (the inbox); the relay takes a new token on
its next claim.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from dataclasses import dataclass, field

import psycopg
from django.db import connections

from messaging.queries import RELAY_KEEPALIVE_SQL, RELAY_LOCK_NAMESPACE, RELAY_PING_SQL, RELAY_TRY_LOCK_SQL

_PING_SECONDS = 1.0


@dataclass
class _Liveness:
    pid: int
    connection: psycopg.Connection | None = None
    token: int = 0
    checked_at: float = 0.0
    # Connections inherited across fork() belong to the parent: closing (or collecting) them would
    # end the parent's session and so its lock. Kept referenced, never used.
    inherited: list[psycopg.Connection] = field(default_factory=list)


_guard = threading.Lock()
_state: _Liveness | None = None


def _reset_guard_in_child() -> None:
    # A fork (Celery's prefork pool) while a relay thread held the guard would leave the child's copy
    # locked forever: the child starts with a fresh one (its state is rebuilt for its own pid anyway).
    global _guard
    _guard = threading.Lock()


os.register_at_fork(after_in_child=_reset_guard_in_child)


def relay_token() -> int:
    """This process's relay token, with its advisory lock held (taken again after a lost connection)."""
    global _state
    with _guard:
        state = _state
        if state is None or state.pid != os.getpid():
            state = _Liveness(pid=os.getpid(), inherited=_inherited(state))
            _state = state
        now = time.monotonic()
        if state.connection is not None and now - state.checked_at >= _PING_SECONDS:
            state.checked_at = now
            try:
                state.connection.execute(RELAY_PING_SQL)
            except psycopg.Error:
                _close(state)
        if state.connection is None or state.connection.closed:
            state.connection, state.token = _hold_new_token()
            state.checked_at = now
        return state.token


def relay_liveness_release() -> None:
    """Release this process's lock (worker shutdown, tests): its claims become due to other relays."""
    with _guard:
        if _state is not None and _state.pid == os.getpid():
            _close(_state)


def _inherited(state: _Liveness | None) -> list[psycopg.Connection]:
    if state is None:
        return []
    return [*state.inherited, *([state.connection] if state.connection is not None else [])]


def _close(state: _Liveness) -> None:
    if state.connection is not None:
        with contextlib.suppress(psycopg.Error):
            state.connection.close()
    state.connection = None


def _hold_new_token() -> tuple[psycopg.Connection, int]:
    params = connections["default"].get_connection_params()
    conn = psycopg.connect(**{**params, "application_name": "tourapp relay liveness"}, autocommit=True)
    try:
        conn.execute(RELAY_KEEPALIVE_SQL)
        while True:
            token = secrets.randbelow(2**31 - 1) + 1
            row = conn.execute(RELAY_TRY_LOCK_SQL, (RELAY_LOCK_NAMESPACE, token)).fetchone()
            if row and row[0]:
                return conn, token
    except BaseException:
        conn.close()
        raise
