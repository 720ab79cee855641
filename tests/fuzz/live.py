"""A real gunicorn serving the app against the pytest-django test database, and a raw HTTP client.

``raw_request`` writes bytes to a socket itself (http.client would refuse or "fix" much of what
a hostile client sends: bad Content-Length, NULs, chunked bodies, duplicate headers) and reads
whatever comes back until the server closes the connection (gunicorn's sync workers close after
every response). A server that answers before reading a huge body and closes is normal (413):
the client stops sending and still reads the answer.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.client import HTTPResponse
from pathlib import Path

from tests.support.database import subprocess_database_url

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes
    reset: bool = False  # the connection was reset before a full answer arrived

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class _Replay:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, *args: object, **kwargs: object) -> io.BytesIO:
        return io.BytesIO(self.data)


def raw_request(
    port: int,
    method: str,
    path: str,
    *,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    content_length: bool = True,
    chunked: bool = False,
    raw_head: bytes | None = None,
    host: str | None = None,
    timeout: float = 30.0,
) -> RawResponse:
    """Send one request as raw bytes and parse the answer. ``raw_head`` replaces the whole head."""
    head_lines = [f"{method} {path} HTTP/1.1", f"Host: {host or f'127.0.0.1:{port}'}", "Connection: close"]
    head_lines += [f"{name}: {value}" for name, value in headers or []]
    if chunked:
        head_lines.append("Transfer-Encoding: chunked")
        payload = b"".join(
            b"%x\r\n%s\r\n" % (len(body[i : i + 65536]), body[i : i + 65536]) for i in range(0, len(body), 65536)
        )
        payload += b"0\r\n\r\n"
    else:
        payload = body
        if content_length and (body or method in ("POST", "PUT", "PATCH")):
            head_lines.append(f"Content-Length: {len(body)}")
    head = raw_head if raw_head is not None else ("\r\n".join(head_lines) + "\r\n\r\n").encode("latin-1")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # the server may answer and close before reading it all
            sock.sendall(head)
            view = memoryview(payload)
            for start in range(0, len(view), 65536):
                sock.sendall(view[start : start + 65536])
        received = bytearray()
        reset = False
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            reset = True
    if not received:
        return RawResponse(status=0, headers={}, body=b"", reset=True)
    response = HTTPResponse(_Replay(bytes(received)))  # type: ignore[arg-type]
    response.begin()
    try:
        data = response.read()
    except Exception:  # a truncated answer (reset mid-body): keep what arrived
        data = b""
        reset = True
    return RawResponse(
        status=response.status, headers={k.lower(): v for k, v in response.getheaders()}, body=data, reset=reset
    )


@dataclass
class Gunicorn:
    """``gunicorn tourapp.wsgi`` as ``make run`` starts it: production WSGI stack, DEBUG from the environment."""

    extra_env: dict[str, str] = field(default_factory=dict)
    workers: int = 2
    port: int = field(default_factory=free_port)
    popen: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=lambda: Path(tempfile.mkstemp(prefix="tourapp-gunicorn-", suffix=".log")[1]))

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "DJANGO_SETTINGS_MODULE")}
        database = {"DATABASE_URL": subprocess_database_url()}
        return {**env, "DJANGO_SETTINGS_MODULE": "tourapp.settings", **database, **self.extra_env}

    def start(self, timeout: float = 60.0) -> None:
        argv = [
            str(BIN / "gunicorn"), "tourapp.wsgi", "--bind", f"127.0.0.1:{self.port}",
            "--workers", str(self.workers), "--timeout", "60", "--access-logfile", "-",
        ]  # fmt: skip
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(argv, cwd=ROOT, env=self.environment(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.log_tail()}")
            with contextlib.suppress(OSError):
                if raw_request(self.port, "GET", "/health/live", timeout=2).status == 200:
                    return
            time.sleep(0.1)  # polling the condition above, with a deadline
        raise RuntimeError(f"gunicorn did not answer within {timeout}s: {self.log_tail()}")

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=10)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> Gunicorn:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def gunicorn_running(**extra_env: str) -> Iterator[Gunicorn]:
    with Gunicorn(extra_env=extra_env) as server:
        yield server
