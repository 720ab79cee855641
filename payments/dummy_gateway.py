"""A deterministic payment provider over HTTP, for ``make run`` and the tests (stdlib only).

Outcome by payment token: ``tok_success`` captures; ``tok_decline`` declines (402,
``card_declined``); ``tok_timeout`` captures and then answers only after ``hang_seconds`` the
first time a key is seen (a timeout AFTER the charge took place), at once afterwards; ``tok_slow``
captures after ``slow_seconds``; any other token is a 400.

Like a real provider it deduplicates on the ``Idempotency-Key`` header: a key seen before gets the
stored answer (same id), a key reused with another amount a 409. Operations live in a SQLite file,
so they survive a restart of this process, and ``GET /v1/operations`` lists them all (for
``manage.py payments_reconcile``).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# Test payment tokens, not secrets (S105).
TOKEN_SUCCESS = "tok_success"  # noqa: S105
TOKEN_DECLINE = "tok_decline"  # noqa: S105
TOKEN_TIMEOUT = "tok_timeout"  # noqa: S105
TOKEN_SLOW = "tok_slow"  # noqa: S105
TOKENS = (TOKEN_SUCCESS, TOKEN_DECLINE, TOKEN_TIMEOUT, TOKEN_SLOW)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
    idempotency_key TEXT PRIMARY KEY, kind TEXT NOT NULL, reference TEXT NOT NULL, status TEXT NOT NULL,
    amount_minor INTEGER NOT NULL, currency TEXT NOT NULL, booking_id TEXT NOT NULL,
    charge_reference TEXT NOT NULL DEFAULT '', decline_code TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL
)
"""
_COLUMNS = (
    "kind",
    "idempotency_key",
    "reference",
    "status",
    "amount_minor",
    "currency",
    "booking_id",
    "charge_reference",
)


class _Store:
    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # an answered charge is on disk
        self._db.execute(_SCHEMA)
        self.lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT kind, reference, status, amount_minor, currency, booking_id, charge_reference, decline_code"
            " FROM operations WHERE idempotency_key = ?",
            (key,),
        ).fetchone()
        if row is None:
            return None
        names = ("kind", "id", "status", "amount_minor", "currency", "booking_id", "charge", "decline_code")
        return dict(zip(names, row, strict=True))

    def insert(self, key: str, op: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT INTO operations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key, op["kind"], op["id"], op["status"], op["amount_minor"], op["currency"],
                str(op["booking_id"]), op.get("charge", ""), op.get("decline_code", ""), time.time(),
            ),
        )  # fmt: skip

    def all(self) -> list[dict[str, Any]]:
        rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM operations ORDER BY created_at").fetchall()  # noqa: S608 - constant column list
        return [dict(zip(_COLUMNS, row, strict=True)) for row in rows]


class DummyGatewayServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], *, db_path: str, hang_seconds: float, slow_seconds: float) -> None:
        super().__init__(address, _Handler)
        self.store = _Store(db_path)
        self.hang_seconds = hang_seconds
        self.slow_seconds = slow_seconds


class _Handler(BaseHTTPRequestHandler):
    server: DummyGatewayServer

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("dummy gateway: " + format, *args)

    def do_GET(self) -> None:
        if self.path == "/health":
            self._send(200, {"status": "ok"})
        elif self.path == "/v1/operations":
            with self.server.store.lock:
                self._send(200, {"operations": self.server.store.all()})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        key = self.headers.get("Idempotency-Key", "")
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            amount, currency = int(body["amount_minor"]), str(body["currency"])
        except (ValueError, KeyError, TypeError):
            self._send(400, {"error": "malformed request"})
            return
        if not key or amount < 0:
            self._send(400, {"error": "Idempotency-Key header and a non-negative amount_minor are required"})
            return
        if self.path == "/v1/charges":
            self._charge(key, body, amount, currency)
        elif self.path == "/v1/refunds":
            self._refund(key, body, amount, currency)
        else:
            self._send(404, {"error": "not found"})

    def _charge(self, key: str, body: dict[str, Any], amount: int, currency: str) -> None:
        store, token = self.server.store, str(body.get("token", ""))
        if token not in TOKENS:
            self._send(400, {"error": "unknown payment token"})
            return
        with store.lock:
            seen = store.get(key)
            if seen is None:
                status = "declined" if token == TOKEN_DECLINE else "succeeded"
                op = {"kind": "charge", "id": f"ch_{uuid.uuid4().hex[:20]}", "status": status,
                      "amount_minor": amount, "currency": currency, "booking_id": body.get("booking_id", ""),
                      "decline_code": "card_declined" if status == "declined" else ""}  # fmt: skip
                store.insert(key, op)
        if seen is not None:
            self._replay(seen, amount, currency)
            return
        if token == TOKEN_TIMEOUT:
            time.sleep(self.server.hang_seconds)  # the charge is made; the answer comes too late
        elif token == TOKEN_SLOW:
            time.sleep(self.server.slow_seconds)
        self._send(402 if op["status"] == "declined" else 201, op)

    def _refund(self, key: str, body: dict[str, Any], amount: int, currency: str) -> None:
        store, charge_ref = self.server.store, str(body.get("charge", ""))
        with store.lock:
            seen = store.get(key)
            if seen is None:
                charges = [o for o in store.all() if o["reference"] == charge_ref and o["kind"] == "charge"]
                if not charges or charges[0]["status"] != "succeeded" or charges[0]["amount_minor"] < amount:
                    self._send(400, {"error": "no captured charge of at least this amount to refund"})
                    return
                op = {"kind": "refund", "id": f"re_{uuid.uuid4().hex[:20]}", "status": "succeeded",
                      "amount_minor": amount, "currency": currency, "booking_id": body.get("booking_id", ""),
                      "charge": charge_ref}  # fmt: skip
                store.insert(key, op)
        if seen is not None:
            self._replay(seen, amount, currency)
            return
        self._send(201, op)

    def _replay(self, seen: dict[str, Any], amount: int, currency: str) -> None:
        if (seen["amount_minor"], seen["currency"]) != (amount, currency):
            self._send(409, {"error": "Idempotency-Key reused with different parameters"})
        else:
            self._send(402 if seen["status"] == "declined" else 200, seen)

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout): the operation is stored all the same


def dummy_gateway_server(
    *, host: str = "127.0.0.1", port: int = 0, db_path: str, hang_seconds: float = 10.0, slow_seconds: float = 0.5
) -> DummyGatewayServer:
    """A bound server (``port=0``: any free port, see ``server_address``); call ``serve_forever()``."""
    return DummyGatewayServer((host, port), db_path=db_path, hang_seconds=hang_seconds, slow_seconds=slow_seconds)
