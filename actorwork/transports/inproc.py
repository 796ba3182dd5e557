"""``inproc://`` — connections between actor systems on the same event loop.

Reach: one process, one event loop. Address: ``inproc://name``, unique among the
listeners of the process. Guarantees: frames arrive in order and whole; the peer's
``aclose()`` is seen after the frames sent before it. The handshake and the frame cap
are the same as on every other transport, and the runtime encodes messages into
frames here too, so a message that cannot be encoded fails in one process exactly as it
would between hosts — which is what makes one-process debugging trustworthy.
Back-pressure: a direction holds at most ``capacity`` frames; ``send`` waits for room.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from typing import ClassVar

import anyio
from anyio.abc import TaskStatus

from actorwork._log import get_logger
from actorwork.addressing import Address
from actorwork.errors import (
    AddressError,
    ConnectionBroken,
    ConnectionClosed,
    EndOfStream,
    FrameTooLarge,
    HandshakeError,
    TransportError,
)
from actorwork.transports._handshake import client_handshake, server_handshake
from actorwork.transports.base import (
    Connection,
    ConnectionHandler,
    ConnectionOptions,
    FrameSink,
    Listener,
    Transport,
)

__all__ = ["InProcConnection", "InProcListener", "InProcTransport"]

log = get_logger(__name__)

_listeners: dict[str, InProcListener] = {}

#: Most frames one ``receive_many`` takes. Frames taken leave the direction and make
#: room for the sender, so an unbounded batch would let a reader stuck behind a full
#: mailbox hold as many frames again as the direction's capacity.
_BATCH = 256


class _Direction:
    """Frames travelling one way, with waiters for data and for room."""

    __slots__ = ("_loop", "capacity", "closed", "frames", "reader", "sink", "sink_cap", "writers")

    def __init__(self, capacity: int, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop  # cached: asking asyncio for the running loop costs a getpid()
        self.frames: deque[bytes] = deque()
        self.capacity = capacity
        self.closed = False
        self.reader: asyncio.Future[None] | None = None
        #: The waiting reader's FrameSink and frame cap (None when it is not waiting).
        self.sink: FrameSink | None = None
        self.sink_cap = 0
        self.writers: deque[asyncio.Future[None]] = deque()

    def close(self) -> None:
        self.closed = True
        self._wake_reader()
        while self.writers:
            waiter = self.writers.popleft()
            if not waiter.done():
                waiter.set_result(None)

    def _wake_reader(self) -> None:
        reader = self.reader
        if reader is not None and not reader.done():
            reader.set_result(None)

    def _push(self, frames: Sequence[bytes]) -> None:
        sink = self.sink
        # The reader waits on an empty deque: nothing is ahead of these frames, so its
        # sink may route them right here, instead of the reader doing it one loop
        # iteration later. Frames over the reader's cap go the slow way, to fail there.
        if (
            sink is not None
            and not self.frames
            and max(map(len, frames)) <= self.sink_cap
            and sink(frames)
        ):
            return
        self.frames.extend(frames)
        self._wake_reader()

    def put_nowait(self, frames: Sequence[bytes]) -> bool:
        """Add ``frames`` if there is room and no writer waits for it; False otherwise."""
        if self.closed or self.writers or len(self.frames) >= self.capacity:
            return False
        self._push(frames)
        return True

    async def put_many(self, frames: Sequence[bytes]) -> None:
        while len(self.frames) >= self.capacity and not self.closed:
            waiter = self._loop.create_future()
            self.writers.append(waiter)
            await waiter
        if self.closed:
            raise ConnectionBroken("peer closed the connection")
        self._push(frames)

    async def take(self, cap: int, limit: int, sink: FrameSink | None = None) -> list[bytes]:
        """Up to ``limit`` frames, waiting for one (offered to ``sink`` meanwhile).

        Stops before a frame over ``cap``, and raises FrameTooLarge when that is the
        first one, so the frames ahead of it are still delivered.
        """
        frames = self.frames
        while not frames:
            if self.closed:
                raise EndOfStream("peer closed the connection")
            self.reader = self._loop.create_future()
            self.sink, self.sink_cap = sink, cap
            try:
                await self.reader
            finally:
                self.reader = self.sink = None
        taken: list[bytes] = []
        while frames and len(taken) < limit:
            if len(frames[0]) > cap:
                if taken:
                    break
                size = len(frames.popleft())
                raise FrameTooLarge(f"peer sent a frame of {size} bytes; cap is {cap}")
            taken.append(frames.popleft())
        while self.writers and len(frames) < self.capacity:
            waiter = self.writers.popleft()
            if not waiter.done():
                waiter.set_result(None)
        return taken


class InProcConnection(Connection):
    """One end of an in-process connection."""

    def __init__(
        self, inbound: _Direction, outbound: _Direction, *, max_frame_size: int, description: str
    ) -> None:
        self._inbound = inbound
        self._outbound = outbound
        self._closed = False
        self.max_frame_size = max_frame_size
        self.peer_description = description

    def _check_sizes(self, frames: Sequence[bytes]) -> None:
        for frame in frames:
            if len(frame) > self.max_frame_size:
                raise FrameTooLarge(
                    f"frame of {len(frame)} bytes exceeds max_frame_size={self.max_frame_size}"
                )

    async def send(self, frame: bytes) -> None:
        await self.send_many((frame,))

    async def send_many(self, frames: Sequence[bytes]) -> None:
        if self._closed:
            raise ConnectionClosed("connection is closed")
        self._check_sizes(frames)
        await self._outbound.put_many(frames)

    def send_nowait(self, frames: Sequence[bytes]) -> bool:
        # Straight into the peer's inbound deque, waking its reader if it waits: the
        # frames cross without a task switch on this side.
        if self._closed:
            return False
        self._check_sizes(frames)
        return self._outbound.put_nowait(frames)

    async def receive(self, max_frame_size: int | None = None) -> bytes:
        if self._closed:
            raise ConnectionClosed("connection is closed")
        cap = self.max_frame_size if max_frame_size is None else max_frame_size
        (frame,) = await self._inbound.take(cap, 1)
        return frame

    async def receive_many(self, sink: FrameSink | None = None) -> list[bytes]:
        if self._closed:
            raise ConnectionClosed("connection is closed")
        return await self._inbound.take(self.max_frame_size, _BATCH, sink)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._outbound.close()
        self._inbound.close()


class InProcListener(Listener):
    """Accepts in-process connections made to ``inproc://name``."""

    def __init__(self, name: str, options: ConnectionOptions, capacity: int) -> None:
        self.name = name
        self.address = f"inproc://{name}"
        self.options = options
        self.capacity = capacity
        self._incoming: asyncio.Queue[InProcConnection] = asyncio.Queue()
        self._closed = False

    async def serve(
        self,
        handler: ConnectionHandler,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        async with anyio.create_task_group() as tg:
            task_status.started()
            while True:
                connection = await self._incoming.get()
                if self._closed:  # aclose() wakes us with a closed dummy
                    break
                tg.start_soon(self._serve_one, connection, handler)

    async def _serve_one(self, connection: InProcConnection, handler: ConnectionHandler) -> None:
        try:
            connection.peer_name = await server_handshake(connection, self.options)
        except HandshakeError as exc:
            log.warning("handshake_refused", address=self.address, reason=str(exc))
            await connection.aclose()
            return
        try:
            await handler(connection)
        except Exception:
            log.exception("connection_handler_failed", address=self.address)
        finally:
            await connection.aclose()

    def _offer(self, connection: InProcConnection) -> None:
        if self._closed:
            raise TransportError(f"inproc listener {self.address!r} is closed")
        self._incoming.put_nowait(connection)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if _listeners.get(self.name) is self:
            del _listeners[self.name]
        dummy = _pair(self.capacity, 1024, "closed")[0]
        self._incoming.put_nowait(dummy)
        while not self._incoming.empty():
            await self._incoming.get_nowait().aclose()


def _pair(
    capacity: int, max_frame_size: int, name: str
) -> tuple[InProcConnection, InProcConnection]:
    loop = asyncio.get_running_loop()
    there, back = _Direction(capacity, loop), _Direction(capacity, loop)
    client = InProcConnection(
        back, there, max_frame_size=max_frame_size, description=f"inproc://{name}"
    )
    server = InProcConnection(
        there, back, max_frame_size=max_frame_size, description="inproc client"
    )
    return client, server


class InProcTransport(Transport):
    """Connections within one event loop; ``capacity`` frames may wait in each direction."""

    scheme: ClassVar[str] = "inproc"

    def __init__(self, *, capacity: int = 4096) -> None:
        self.capacity = capacity

    def check_address(self, address: Address) -> None:
        if not address.location:
            raise AddressError(f"address {str(address)!r} needs a name, e.g. 'inproc://scheduler'")

    async def connect(self, address: Address, options: ConnectionOptions) -> Connection:
        listener = _listeners.get(address.location)
        if listener is None:
            known = ", ".join(sorted(_listeners)) or "none"
            raise TransportError(
                f"cannot connect to {str(address)!r}: no inproc listener of that name "
                f"(listening: {known})"
            )
        client, server = _pair(self.capacity, options.max_frame_size, address.location)
        server.max_frame_size = listener.options.max_frame_size
        listener._offer(server)  # noqa: SLF001 - the listener and transport are one unit
        try:
            client.peer_name = await client_handshake(client, options)
        except BaseException:
            await client.aclose()
            raise
        return client

    async def listen(self, address: Address, options: ConnectionOptions) -> Listener:
        name = address.location
        if not name:
            raise TransportError(
                f"address {str(address)!r} needs a name, e.g. 'inproc://scheduler'"
            )
        if name in _listeners:
            raise TransportError(f"cannot listen on {str(address)!r}: the name is already in use")
        listener = InProcListener(name, options, self.capacity)
        _listeners[name] = listener
        return listener
