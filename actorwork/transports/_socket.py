"""Frames over a socket driven by asyncio protocol callbacks: unix, plain tcp and pipe.

Why not the anyio byte stream that :class:`~actorwork.transports._framing.FramedStream`
frames (still used for TLS): each of its receives costs a checkpoint, a loop iteration,
and two ``epoll_ctl`` calls to resume and pause reading, and each send needs a task.
Here the loop calls :class:`SocketConnection` as bytes arrive: complete frames go to
the reader's sink when it is idle (no task switch at all) or wait for ``receive_many``;
frames sent during one loop iteration leave in one write, scheduled for the end of it.

The wire layout is the one in ``_framing`` (``HEADER`` then payload), and a header is
checked against the cap before anything is buffered for its body. Reading pauses
while the reader is busy and more than ``_READ_AHEAD`` bytes wait, so a stuck reader
pushes back on the peer through the kernel's buffers.

On the accepting side an :class:`~._framing.Intake` keeps the listener's limits: it
is told of every arrival (one scan of the new headers, one clock read) and a single
loop timer per connection, moved only when a frame begins, asks it whether the peer
has been idle or has left a frame unfinished for too long. Reading also pauses while
the listener's buffer budget has no room for the frame begun.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import anyio.abc
from anyio.abc import TaskStatus

from actorwork._log import get_logger
from actorwork.errors import ConnectionBroken, ConnectionClosed, EndOfStream, FrameTooLarge
from actorwork.transports._framing import HEADER, BufferBudget, Intake
from actorwork.transports._handshake import client_handshake
from actorwork.transports._stream import ConnectionSlots, new_intake, serve_handshaken
from actorwork.transports.base import (
    Connection,
    ConnectionHandler,
    ConnectionOptions,
    FrameSink,
    Listener,
)

__all__ = [
    "Create",
    "SocketConnection",
    "SocketListener",
    "connect_socket",
    "listening_sockets",
    "open_socket_connection",
]

log = get_logger(__name__)

_READ_AHEAD = 256 * 1024  # bytes buffered for a busy reader before reading pauses
_WRITE_BATCH = 64 * 1024  # bytes gathered for one write before it is made at once
_NO_LIMIT = 1 << 62


class SocketConnection(asyncio.Protocol, Connection):
    """One connected socket: the asyncio protocol and the frame :class:`Connection` in one.

    Not safe for concurrent ``receive`` calls (one reader task, as the runtime uses it).
    """

    def __init__(self, max_frame_size: int) -> None:
        self.max_frame_size = max_frame_size
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._pos = 0  # start of the first frame not yet handed out
        self._reader: asyncio.Future[None] | None = None  # set while the reader waits
        self._sink: FrameSink | None = None
        self._sink_cap = 0
        self._reading_paused = False
        self._pending: list[bytes] = []  # headers and payloads not yet written
        self._pending_size = 0
        self._flush_scheduled = False
        self._writing_paused = False
        self._room: asyncio.Future[None] | None = None  # set while a sender waits for room
        self._closed = False  # closed by this side
        self._lost: Exception | None = None  # why the socket is gone, once it is
        self._gone = self._loop.create_future()  # done once connection_lost ran
        #: Called once with this connection when the socket is connected.
        self.on_connected: Callable[[SocketConnection], None] | None = None
        #: Set on the accepting side: the listener's limits for this connection.
        self.intake: Intake | None = None
        self._waiting_room = False  # reading paused until the budget has room
        self._timer: asyncio.TimerHandle | None = None  # the deadlines' check
        self._timing = False  # deadlines run (from the end of the handshake on)
        self._expired: ConnectionBroken | None = None  # why a deadline closed it
        self._cut = 0  # bytes of an unfinished frame dropped when the peer left

    # --- asyncio protocol callbacks ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        _no_delay(transport)
        if not self.peer_description:
            self.peer_description = _describe(transport.get_extra_info("peername"))
        if self.on_connected is not None:
            self.on_connected(self)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self.intake is not None:
            self._account(self.intake)
        reader = self._reader
        if reader is None or reader.done():
            if len(self._buffer) - self._pos > _READ_AHEAD and not self._reading_paused:
                self._reading_paused = True
                self._pause()
            return
        if self._sink is not None and self._offer_to_sink(self._sink):
            return
        reader.set_result(None)

    def eof_received(self) -> bool:
        return False  # close: a peer that stops sending is done

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = self._expired or exc or EndOfStream("peer closed the connection")
        intake = self.intake
        if intake is not None:
            # The rest of an unfinished frame will never come: give its memory back now.
            self._cut = intake.cut(self._buffer)
            intake.consumed(self._buffer, self._pos)
            self._stop_limits(intake)
        for waiter in (self._reader, self._room):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        if not self._gone.done():
            self._gone.set_result(None)

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._room is not None and not self._room.done():
            self._room.set_result(None)

    # --- limits of an accepted connection ---------------------------------------------

    def _account(self, intake: Intake) -> None:
        now = self._loop.time()
        if not intake.received(self._buffer, self._pos, now):
            self._waiting_room = True
            self._pause()
            assert intake.budget is not None
            intake.budget.wait(self._room_retry)
        since, limit = intake.frame_since, intake.frame_timeout
        # A frame began: its deadline may come before the one the timer waits for.
        if self._timing and since is not None and limit is not None:
            self._check_by(since + limit)

    def _check_by(self, due: float) -> None:
        timer = self._timer
        if timer is None or due < timer.when():
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(due, self._check_deadlines)

    def _room_retry(self) -> bool:
        """The budget gave room back: take what the frame begun needs, and read on."""
        intake = self.intake
        if intake is None or not intake.retry(self._buffer, self._pos):
            return False
        self._waiting_room = False
        self._resume()
        return True

    def _pause(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()
        if self.intake is not None:
            self.intake.pause(self._loop.time())

    def _resume(self) -> None:
        if self._reading_paused or self._waiting_room:
            return
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()
        if self.intake is not None:
            self.intake.resume(self._loop.time())

    def admitted(self) -> None:
        """The handshake is done: reserve for payload frames and start the deadlines."""
        intake = self.intake
        if intake is None or self._lost is not None or self._closed:
            return
        intake.cap = self.max_frame_size
        self._timing = True
        self._check_deadlines()

    def _check_deadlines(self) -> None:
        self._timer = None
        intake = self.intake
        if intake is None or self._lost is not None or self._closed:
            return
        reason, due = intake.overdue(self._loop.time(), self.peer_may_be_silent)
        if reason is not None:
            log.warning("connection_expired", peer=self.peer_description, reason=reason)
            self._expired = ConnectionBroken(reason)
            if self._transport is not None:
                self._transport.abort()
        elif due != float("inf"):
            self._check_by(due)

    def _stop_limits(self, intake: Intake) -> None:
        self._timing = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if intake.budget is not None:
            intake.budget.cancel(self._room_retry)

    def abort(self) -> None:
        """Drop the socket at once, unread and unwritten (a connection over a limit)."""
        if self._transport is not None:
            self._transport.abort()

    # --- receiving ---------------------------------------------------------------------

    def _offer_to_sink(self, sink: FrameSink) -> bool:
        """Hand the complete frames to an idle reader's sink; False to wake the reader."""
        start = self._pos
        try:
            frames = self._pop_frames(self._sink_cap, _NO_LIMIT)
        except FrameTooLarge:
            return False  # the reader raises it
        if not frames:
            return True  # nothing complete yet: keep waiting
        if sink(frames):
            self._compact()
            return True
        self._pos = start
        return False

    def _pop_frames(self, cap: int, limit: int) -> list[bytes]:
        """Up to ``limit`` complete frames; FrameTooLarge if the first is over ``cap``."""
        buffer, pos, size = self._buffer, self._pos, len(self._buffer)
        frames: list[bytes] = []
        while len(frames) < limit and size - pos >= HEADER.size:
            (length,) = HEADER.unpack_from(buffer, pos)
            if length > cap:
                if frames:
                    break  # deliver these first; the next call raises
                raise FrameTooLarge(f"peer announced a frame of {length} bytes; cap is {cap}")
            end = pos + HEADER.size + length
            if end > size:
                break
            frames.append(bytes(buffer[pos + HEADER.size : end]))
            pos = end
        self._pos = pos
        return frames

    def _compact(self) -> None:
        removed = 0
        if self._pos == len(self._buffer):
            removed = self._pos
            self._buffer.clear()
            self._pos = 0
        elif self._pos > len(self._buffer) // 2:
            removed = self._pos
            del self._buffer[: self._pos]
            self._pos = 0
        if self.intake is not None:
            self.intake.consumed(self._buffer, self._pos, removed)

    async def _receive(self, cap: int, limit: int, sink: FrameSink | None) -> list[bytes]:
        while True:
            if self._closed:
                raise ConnectionClosed("connection is closed")
            frames = self._pop_frames(cap, limit)
            if frames:
                self._compact()
                return frames
            if self._lost is not None:
                raise self._receive_error(self._lost)
            if self._reading_paused:
                self._reading_paused = False
                self._resume()
            self._reader = self._loop.create_future()
            self._sink, self._sink_cap = sink, cap
            try:
                await self._reader
            finally:
                self._reader = self._sink = None

    def _receive_error(self, lost: Exception) -> Exception:
        if isinstance(lost, ConnectionBroken):
            return lost
        buffered = len(self._buffer) - self._pos + self._cut
        if isinstance(lost, EndOfStream):
            if buffered:
                return ConnectionBroken(
                    f"peer closed the connection in the middle of a frame ({buffered} bytes "
                    "buffered)"
                )
            return EndOfStream("peer closed the connection")
        return ConnectionBroken(f"receive failed: {lost!r}")

    async def receive(self, max_frame_size: int | None = None) -> bytes:
        cap = self.max_frame_size if max_frame_size is None else max_frame_size
        (frame,) = await self._receive(cap, 1, None)
        return frame

    async def receive_many(self, sink: FrameSink | None = None) -> list[bytes]:
        return await self._receive(self.max_frame_size, _NO_LIMIT, sink)

    # --- sending -----------------------------------------------------------------------

    def _queue(self, frames: Sequence[bytes]) -> None:
        cap = self.max_frame_size
        for frame in frames:
            if len(frame) > cap:
                raise FrameTooLarge(f"frame of {len(frame)} bytes exceeds max_frame_size={cap}")
        pending = self._pending
        for frame in frames:
            pending.append(HEADER.pack(len(frame)))
            pending.append(frame)
            self._pending_size += HEADER.size + len(frame)

    def _flush(self) -> None:
        if self._pending and self._lost is None and self._transport is not None:
            self._transport.write(b"".join(self._pending))
        self._pending.clear()
        self._pending_size = 0

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def send_nowait(self, frames: Sequence[bytes]) -> bool:
        if self._closed or self._lost is not None or self._writing_paused:
            return False
        self._queue(frames)
        # The first frames since the last write go out now: an ask's round trip waits
        # on them. What follows in this loop iteration is gathered into one write at
        # its end, as a system call per frame would cost more than the rest of sending
        # a message; a sender that never yields gets a write per full batch, so that
        # the transport can push back (pause_writing) before the batch grows unbounded.
        if not self._flush_scheduled:
            self._flush()
            self._flush_scheduled = True
            self._loop.call_soon(self._scheduled_flush)
        elif self._pending_size >= _WRITE_BATCH:
            self._flush()
        return True

    async def send(self, frame: bytes) -> None:
        await self.send_many((frame,))

    async def send_many(self, frames: Sequence[bytes]) -> None:
        if self._closed:
            raise ConnectionClosed("connection is closed")
        if self._lost is not None:
            raise ConnectionBroken(f"send failed: {self._lost!r}")
        self._queue(frames)
        self._flush()
        while self._writing_paused and self._lost is None and not self._closed:
            self._room = self._loop.create_future()
            try:
                await self._room
            finally:
                self._room = None

    # --- closing -----------------------------------------------------------------------

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        transport = self._transport
        if transport is not None and self._lost is None:
            self._flush()
            # Close gracefully when everything was written; a peer that stopped reading
            # would otherwise keep the socket open for as long as it likes.
            if transport.get_write_buffer_size():
                transport.abort()
            else:
                transport.close()
        for waiter in (self._reader, self._room):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        self._buffer = bytearray()  # nothing is read after aclose: its memory goes back now
        self._pos = 0
        if self.intake is not None:
            self._stop_limits(self.intake)
            self.intake.release()
        if transport is not None:
            with anyio.CancelScope(shield=True):
                await self._gone

    def __repr__(self) -> str:
        return f"<{type(self).__name__} peer={self.peer_name!r} at {self.peer_description!r}>"


def _describe(peer: Any) -> str:
    if isinstance(peer, tuple):
        return f"{peer[0]}:{peer[1]}"
    return str(peer) if peer else ""


Create = Callable[[Callable[[], SocketConnection]], Awaitable[Any]]


async def connect_socket(create: Create, max_frame_size: int, description: str) -> SocketConnection:
    """The connection ``create(protocol_factory)`` makes (a loop ``create_*`` call)."""
    connection = SocketConnection(max_frame_size)
    connection.peer_description = description
    await create(lambda: connection)
    return connection


async def open_socket_connection(
    create: Create, options: ConnectionOptions, *, description: str
) -> SocketConnection:
    """Connect as :func:`connect_socket`, then run the client handshake (closing on failure).

    Errors of ``create`` propagate for the scheme to translate.
    """
    connection = await connect_socket(create, options.max_frame_size, description)
    try:
        connection.peer_name = await client_handshake(connection, options)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await connection.aclose()
        raise
    return connection


class SocketListener(Listener):
    """Serves each connection accepted on ``sockets``, after the handshake.

    The listening sockets are bound by the scheme (with anyio, for its checks, modes
    and dual-stack ports); ``serve`` runs an asyncio server on each.
    """

    def __init__(
        self,
        sockets: Sequence[socket.socket],
        options: ConnectionOptions,
        *,
        address: str,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._sockets = list(sockets)
        self._servers: list[asyncio.AbstractServer] = []
        self._options = options
        self._on_close = on_close
        self._closed = anyio.Event()
        self.address = address
        self.slots = ConnectionSlots(options.max_connections, address)
        self.budget = BufferBudget(options.buffer_limit)

    async def serve(
        self,
        handler: ConnectionHandler,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        loop = asyncio.get_running_loop()
        async with anyio.create_task_group() as tg:

            def accepted(connection: SocketConnection) -> None:
                if self.slots.take(connection.peer_description):
                    tg.start_soon(self._serve_one, connection, handler)
                else:
                    connection.abort()

            def factory() -> SocketConnection:
                connection = SocketConnection(self._options.max_frame_size)
                connection.intake = new_intake(self._options, self.budget, loop.time())
                connection.on_connected = accepted
                return connection

            try:
                while self._sockets:
                    sock = self._sockets.pop()
                    create = (
                        loop.create_unix_server
                        if sock.family == socket.AF_UNIX
                        else loop.create_server
                    )
                    self._servers.append(await create(factory, sock=sock))
                task_status.started()
                await self._closed.wait()
            finally:
                self._stop()

    async def _serve_one(self, connection: SocketConnection, handler: ConnectionHandler) -> None:
        description = connection.peer_description or self.address
        try:
            await serve_handshaken(
                connection, self._options, handler, address=self.address, description=description
            )
        finally:
            self.slots.give_back()

    def _stop(self) -> None:
        for server in self._servers:
            server.close()
        for sock in self._sockets:
            sock.close()
        self._servers.clear()
        self._sockets.clear()

    async def aclose(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._stop()
        if self._on_close is not None:
            self._on_close()


async def listening_sockets(listeners: Sequence[anyio.abc.SocketListener]) -> list[socket.socket]:
    """The sockets anyio bound, taken over: duplicated, and anyio's listeners closed."""
    sockets = []
    for listener in listeners:
        sockets.append(listener.extra(anyio.abc.SocketAttribute.raw_socket).dup())
        await listener.aclose()
    return sockets


def _no_delay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle's algorithm off on a TCP socket: asyncio leaves it on for sockets a
    server accepts from a socket it was given, and a small reply then waits for the
    peer's delayed ACK (about 40 ms)."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass  # the peer may already be gone; the next read or write reports it
