"""A connection and a listener over any anyio byte stream, shared by unix, tcp and pipe.

The scheme modules only open sockets; framing, the handshake, the deadline and the
translation of errors happen here, once. Listeners here and in ``_socket`` share the
limits on what accepted peers may hold: ``max_connections`` at once (more are closed
as they come, with a logged reason), and a :class:`~._framing.BufferBudget` of
``options.buffer_limit`` bytes with idle and frame deadlines (see ``_framing``).
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import anyio
import anyio.abc
from anyio.abc import TaskStatus

from actorwork._log import get_logger
from actorwork.errors import HandshakeError, TransportError
from actorwork.transports._framing import BufferBudget, FramedStream, Intake
from actorwork.transports._handshake import HANDSHAKE_FRAME_CAP, client_handshake, server_handshake
from actorwork.transports.base import (
    Connection,
    ConnectionHandler,
    ConnectionOptions,
    FrameSink,
    Listener,
)

__all__ = [
    "ConnectionSlots",
    "StreamConnection",
    "StreamListener",
    "describe_stream",
    "new_intake",
    "open_stream_connection",
    "serve_handshaken",
    "serve_stream",
]

if TYPE_CHECKING:
    from actorwork.transports._socket import SocketConnection

log = get_logger(__name__)

StreamWrapper = Callable[[anyio.abc.ByteStream], Awaitable[anyio.abc.ByteStream]]


def describe_stream(stream: anyio.abc.ByteStream) -> str:
    """The remote end of a socket stream, for logs ('' if unknown)."""
    remote = stream.extra(anyio.abc.SocketAttribute.remote_address, None)
    if isinstance(remote, tuple):
        return f"{remote[0]}:{remote[1]}"
    return str(remote) if remote else ""


class ConnectionSlots:
    """How many connections one listener holds, against ``max_connections``."""

    __slots__ = ("address", "held", "limit")

    def __init__(self, limit: int, address: str) -> None:
        self.limit = limit
        self.address = address
        self.held = 0

    def take(self, peer: str) -> bool:
        """Count one more connection; False (and a logged reason) if none is left."""
        if self.held >= self.limit:
            log.warning(
                "connection_refused",
                address=self.address,
                peer=peer,
                reason=f"max_connections={self.limit} reached",
            )
            return False
        self.held += 1
        return True

    def give_back(self) -> None:
        self.held -= 1


def new_intake(options: ConnectionOptions, budget: BufferBudget, now: float) -> Intake:
    """The limits of ``options`` for one accepted connection, charged to ``budget``.

    Until the handshake is done the intake reserves room for handshake frames only, so
    a peer that has not yet proved anything cannot book the budget with a large header.
    """
    return Intake(
        budget,
        cap=HANDSHAKE_FRAME_CAP,
        idle_timeout=options.idle_timeout,
        frame_timeout=options.frame_timeout,
        now=now,
    )


class StreamConnection(Connection):
    """Frames over a byte stream, after a completed handshake."""

    def __init__(self, framed: FramedStream, *, peer_name: str, peer_description: str) -> None:
        self._framed = framed
        self.peer_name = peer_name
        self.peer_description = peer_description

    @property
    def max_frame_size(self) -> int:
        return self._framed.max_frame_size

    @property
    def peer_may_be_silent(self) -> Callable[[], bool] | None:
        return self._framed.peer_may_be_silent

    @peer_may_be_silent.setter
    def peer_may_be_silent(self, value: Callable[[], bool] | None) -> None:
        self._framed.peer_may_be_silent = value

    async def send(self, frame: bytes) -> None:
        await self._framed.send(frame)

    async def send_many(self, frames: Sequence[bytes]) -> None:
        await self._framed.send_many(frames)

    async def receive(self, max_frame_size: int | None = None) -> bytes:
        return await self._framed.receive(max_frame_size)

    def admitted(self) -> None:
        """The handshake is done: payload frames up to the cap may now be reserved for."""
        if self._framed.intake is not None:
            self._framed.intake.cap = self._framed.max_frame_size

    async def receive_many(self, sink: FrameSink | None = None) -> list[bytes]:
        return await self._framed.receive_many()

    async def aclose(self) -> None:
        await self._framed.aclose()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} peer={self.peer_name!r} at {self.peer_description!r}>"


async def open_stream_connection(
    stream: anyio.abc.ByteStream,
    options: ConnectionOptions,
    *,
    description: str,
    wrap: StreamWrapper | None = None,
) -> StreamConnection:
    """Frame ``stream`` and run the client handshake; close the stream on failure."""
    framed = FramedStream(stream, max_frame_size=options.max_frame_size)
    try:
        if wrap is not None:
            framed.stream = await wrap(stream)
        peer_name = await client_handshake(framed, options)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await framed.aclose()
        raise
    return StreamConnection(framed, peer_name=peer_name, peer_description=description)


class StreamListener(Listener):
    """Accepts byte streams from an anyio listener and serves each after the handshake."""

    def __init__(
        self,
        listeners: Sequence[anyio.abc.SocketListener],
        options: ConnectionOptions,
        *,
        address: str,
        wrap: StreamWrapper | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._listeners = list(listeners)
        self._options = options
        self._wrap = wrap
        self._on_close = on_close
        self._closed = False
        self.address = address
        self.slots = ConnectionSlots(options.max_connections, address)
        self.budget = BufferBudget(options.buffer_limit)

    async def serve(
        self,
        handler: ConnectionHandler,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        async with anyio.create_task_group() as tg:
            for listener in self._listeners:
                tg.start_soon(self._accept_loop, listener, handler, tg)
            task_status.started()

    async def _accept_loop(
        self,
        listener: anyio.abc.SocketListener,
        handler: ConnectionHandler,
        tg: anyio.abc.TaskGroup,
    ) -> None:
        while True:
            try:
                stream = await listener.accept()
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return
            except OSError as exc:  # EMFILE and friends: log, back off, go on
                log.warning("accept_failed", address=self.address, error=repr(exc))
                await anyio.sleep(0.1)
                continue
            if not self.slots.take(describe_stream(stream)):
                with anyio.CancelScope(shield=True):
                    await stream.aclose()
                continue
            tg.start_soon(self._serve_one, stream, handler)

    async def _serve_one(self, stream: anyio.abc.ByteStream, handler: ConnectionHandler) -> None:
        try:
            await serve_stream(
                stream,
                self._options,
                handler,
                address=self.address,
                description=describe_stream(stream) or self.address,
                wrap=self._wrap,
                intake=new_intake(self._options, self.budget, anyio.current_time()),
            )
        finally:
            self.slots.give_back()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        for listener in self._listeners:
            await listener.aclose()
        if self._on_close is not None:
            self._on_close()


_REFUSALS = (
    HandshakeError,
    TransportError,
    TimeoutError,
    ssl.SSLError,
    OSError,
    anyio.BrokenResourceError,
    anyio.EndOfStream,
)


async def serve_stream(
    stream: anyio.abc.ByteStream,
    options: ConnectionOptions,
    handler: ConnectionHandler,
    *,
    address: str,
    description: str,
    wrap: StreamWrapper | None = None,
    intake: Intake | None = None,
) -> None:
    """Server side of one accepted stream: wrap, then as :func:`serve_handshaken`."""
    framed = FramedStream(
        stream, max_frame_size=options.max_frame_size, intake=intake, description=description
    )
    if wrap is not None:
        try:
            with anyio.fail_after(options.handshake_timeout):
                framed.stream = await wrap(stream)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await framed.aclose()
            if not isinstance(exc, _REFUSALS):
                raise
            _log_refusal(address, description, exc)
            return
    connection = StreamConnection(framed, peer_name="", peer_description=description)
    await serve_handshaken(connection, options, handler, address=address, description=description)


async def serve_handshaken(
    connection: StreamConnection | SocketConnection,
    options: ConnectionOptions,
    handler: ConnectionHandler,
    *,
    address: str,
    description: str,
) -> None:
    """Server side of one accepted connection: handshake, run ``handler``, always close.

    A failed handshake is logged as ``handshake_refused``; an exception from the
    handler as ``connection_handler_failed``. Neither propagates.
    """
    try:
        try:
            connection.peer_name = await server_handshake(connection, options)
        except _REFUSALS as exc:
            _log_refusal(address, description, exc)
            return
        connection.admitted()
        try:
            await handler(connection)
        except Exception:
            log.exception("connection_handler_failed", address=address, peer=description)
    finally:
        with anyio.CancelScope(shield=True):
            await connection.aclose()


def _log_refusal(address: str, description: str, exc: BaseException) -> None:
    log.warning(
        "handshake_refused",
        address=address,
        peer=description,
        reason=str(exc) or type(exc).__name__,
    )
