"""A test-only TCP proxy that drops chosen frames between a Pool and its Scheduler.

It forwards bytes frame by frame (the 8-byte length prefix every byte-stream transport
uses), decodes what it can as actor envelopes, and asks ``drop(direction, message)``
whether to forward each; handshake frames, which are not envelopes, always pass. It
makes the faults of RELIABILITY.md that TCP itself never produces on a live connection
(a frame lost while the connection stays up) repeatable, and also black-holes: every
frame of the connections open now (``freeze``: a half-open connection) or of every
connection until healed (``partition``), with the TCP connections kept open.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Callable
from typing import Literal

from actorwork.codec import Codec
from actorwork.errors import ProtocolError
from actorwork.messages import Message

Direction = Literal["to_scheduler", "to_pool"]

_HEADER = struct.Struct(">Q")


class FaultProxy:
    """Listens on 127.0.0.1 (``port``) and forwards each connection to ``target_port``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        #: Decides per frame; the default forwards everything.
        self.drop: Callable[[Direction, Message], bool] = lambda direction, message: False
        #: ``(direction, message type)`` of every frame dropped, in order.
        self.dropped: list[tuple[Direction, str]] = []
        self._codec = Codec()
        self._tasks: set[asyncio.Task[None]] = set()
        #: Every connection accepted so far (a reconnect is a new one).
        self.connections = 0
        self.partitioned = False
        self._frozen: set[int] = set()

    def freeze(self) -> None:
        """Forward nothing more on the connections open now; new ones flow."""
        self._frozen.update(range(1, self.connections + 1))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[FaultProxy]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        pumps = [
            asyncio.create_task(self._pump(reader, upstream_writer, "to_scheduler", number)),
            asyncio.create_task(self._pump(upstream_reader, writer, "to_pool", number)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
                self._tasks.discard(pump)
            for out in (writer, upstream_writer):
                out.close()

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        direction: Direction,
        number: int,
    ) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                header = await reader.readexactly(_HEADER.size)
                (length,) = _HEADER.unpack(header)
                payload = await reader.readexactly(length)
                if self.partitioned or number in self._frozen:
                    continue  # black-holed: read and never forwarded
                message = self._identify(payload)
                if message is not None and self.drop(direction, message):
                    self.dropped.append((direction, type(message).__name__))
                    continue
                writer.write(header + payload)
                await writer.drain()

    def _identify(self, payload: bytes) -> Message | None:
        try:
            return self._codec.decode_body(self._codec.decode_envelope(payload).body)
        except ProtocolError:
            return None
