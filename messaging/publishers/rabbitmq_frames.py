"""RabbitMQ fast path: a batch's ``basic.publish`` frames encoded in memory, sent in one write.

Built on py-amqp internals (``method_framing.frame_writer``, ``serialization.dumps``, the
connection's transport), so it runs only where ``AMQP_FRAME_WRITER_GATE`` is open. Elsewhere the
publisher sends each message with the public ``Channel.basic_publish``, which writes the same
frames one message at a time and polls for ``connection.blocked`` before each (why the batch is
cheaper: docs/performance.md).
"""

from __future__ import annotations

from typing import Any

from amqp import Message, spec
from amqp.method_framing import frame_writer
from amqp.serialization import dumps

from messaging.publishers.version_gate import VersionGate

AMQP_FRAME_WRITER_GATE = VersionGate(
    distribution="amqp",
    supported=("5.3.1",),
    fast_path="the batched frame writer",
    fallback="Channel.basic_publish per message",
)


class _FrameBuffer:
    """Stands in for py-amqp's transport under ``frame_writer``: collects a batch's frames in memory."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes | memoryview) -> None:
        self.chunks.append(bytes(data))  # copy: frame_writer reuses its buffer for the next frame

    def take(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


class BatchFrameWriter:
    """Encodes ``mandatory`` ``basic.publish`` frames for one connection; ``send`` writes them at once."""

    def __init__(self, *, connection: Any, exchange: str) -> None:
        self._connection = connection  # py-amqp's Connection
        self._exchange = exchange
        self._frames = _FrameBuffer()
        self._write_frame = frame_writer(connection, self._frames)
        self._publish_args: dict[str, bytes] = {}  # routing key -> encoded basic.publish arguments

    def begin(self) -> None:
        self._frames.chunks.clear()  # nothing left over from a batch that raised while encoding

    def add(self, *, channel_id: int, routing_key: str, message: Message) -> None:
        self._write_frame(1, channel_id, spec.Basic.Publish, self._args(routing_key), message)

    def send(self, *, timeout: float) -> None:
        """One socket write, bounded by ``timeout``: a broker that stops reading (a memory or disk
        alarm) raises instead of hanging the relay."""
        transport = self._connection.transport
        with transport.having_timeout(timeout):
            transport.write(self._frames.take())

    def _args(self, routing_key: str) -> bytes:
        args = self._publish_args.get(routing_key)
        if args is None:  # ticket, exchange, routing key, mandatory, immediate
            args = self._publish_args[routing_key] = dumps("Bssbb", (0, self._exchange, routing_key, True, False))
        return args
