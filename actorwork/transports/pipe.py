"""``pipe://`` — a child Python process with its own actor system, over a pipe.

Reach: parent and child process. Address: ``pipe://<fd>``, an inherited file
descriptor of a ``multiprocessing.Pipe`` (a connected socket pair on POSIX), which is
what :func:`actorwork.runtime.child.start_child` hands the child; the parent is the connecting side.
Guarantees: frames arrive in order and whole; the child's death is seen at once (EOF),
failing pending asks; the child dies with its parent (``PR_SET_PDEATHSIG`` on Linux,
and on any platform it exits when the pipe reaches EOF). The same framing and
handshake as unix and tcp run over it; the limits a listener sets for strangers
(idle and frame deadlines, buffer budget, connection cap) do not apply to the one
inherited pipe, whose peer is the parent, silent while the child has no work.

::

    async with ActorSystem("parent") as system:
        child = await system.spawn_child("worker-1")
        worker = await child.spawn("myapp.actors:Worker", name="worker")
        await worker.ask(DoThing())
        await child.aclose()      # or let the system close it
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import ClassVar

import anyio
import anyio.abc
from anyio.abc import TaskStatus

from actorwork._log import get_logger
from actorwork.addressing import Address
from actorwork.errors import AddressError, TransportError
from actorwork.transports._socket import (
    Create,
    SocketConnection,
    connect_socket,
    open_socket_connection,
)
from actorwork.transports._stream import serve_handshaken
from actorwork.transports.base import (
    Connection,
    ConnectionHandler,
    ConnectionOptions,
    Listener,
    Transport,
)

__all__ = ["PipeTransport"]

log = get_logger(__name__)


def _fd(address: Address) -> int:
    try:
        fd = int(address.location)
    except ValueError:
        raise AddressError(
            f"address {str(address)!r}: pipe:// takes an inherited file descriptor number; "
            "use ActorSystem.spawn_child() to start a child process"
        ) from None
    if fd < 0:
        raise AddressError(f"address {str(address)!r}: negative file descriptor")
    return fd


def _pipe_end(fd: int, address: Address) -> Create:
    """How to connect over the pipe end ``fd`` (which the connection then owns)."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise TransportError(f"cannot use {str(address)!r}: {exc.strerror or exc}") from exc
    if sock.family != socket.AF_UNIX:
        sock.detach()
        raise TransportError(f"cannot use {str(address)!r}: fd {fd} is not a pipe end")

    async def create(factory: Callable[[], SocketConnection]) -> object:
        try:
            return await asyncio.get_running_loop().create_unix_connection(factory, sock=sock)
        except BaseException:
            sock.close()
            raise

    return create


class PipeTransport(Transport):
    """Frames over an inherited pipe end; see :func:`start_child` for the parent side."""

    scheme: ClassVar[str] = "pipe"

    def check_address(self, address: Address) -> None:
        _fd(address)

    async def connect(self, address: Address, options: ConnectionOptions) -> Connection:
        create = _pipe_end(_fd(address), address)
        return await open_socket_connection(create, options, description=str(address))

    async def listen(self, address: Address, options: ConnectionOptions) -> Listener:
        return _PipeListener(_fd(address), address, options)


class _PipeListener(Listener):
    """Serves the single connection on an inherited pipe end, then stops."""

    def __init__(self, fd: int, address: Address, options: ConnectionOptions) -> None:
        self._fd = fd
        self._parsed = address
        self._options = options
        self._closed = False
        self._scope: anyio.CancelScope | None = None
        self.address = str(address)

    async def serve(
        self,
        handler: ConnectionHandler,
        *,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        create = _pipe_end(self._fd, self._parsed)
        connection = await connect_socket(create, self._options.max_frame_size, self.address)
        with anyio.CancelScope() as self._scope:
            task_status.started()
            await serve_handshaken(
                connection, self._options, handler, address=self.address, description=self.address
            )

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._scope is not None:
            self._scope.cancel()
