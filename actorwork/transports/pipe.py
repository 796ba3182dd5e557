"""``pipe://`` — a child Python process with its own actor system, over a pipe.

Reach: parent and child process. Address: ``pipe://<fd>``, an inherited file
descriptor of a ``multiprocessing.Pipe`` (a connected socket pair on POSIX), which is
what :func:`start_child` hands the child; the parent is the connecting side.
Guarantees: frames arrive in order and whole; the child's death is seen at once (EOF),
failing pending asks; the child dies with its parent (``PR_SET_PDEATHSIG`` on Linux,
and on any platform it exits when the pipe reaches EOF). The same framing and
handshake as unix and tcp run over it.

::

    async with ActorSystem("parent") as system:
        child = await system.spawn_child("worker-1")
        worker = await child.spawn("myapp.actors:Worker", name="worker")
        await worker.ask(DoThing())
        await child.aclose()      # or let the system close it
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import inspect
import multiprocessing
import os
import signal
import socket
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

import anyio
import anyio.abc
import structlog
from anyio.abc import TaskStatus

from actorwork._importing import import_object
from actorwork.addressing import Address
from actorwork.errors import AddressError, TransportError
from actorwork.runtime.ref import PeerSystem
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

if TYPE_CHECKING:
    from actorwork.runtime.link import Link
    from actorwork.runtime.system import ActorSystem

__all__ = ["ChildProcess", "PipeTransport", "start_child"]

log = structlog.get_logger(__name__)

_PR_SET_PDEATHSIG = 1


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


class ChildProcess(PeerSystem):
    """A child process running an actor system, linked to the parent's over a pipe.

    ``aclose()`` closes the pipe (the child then stops its actors and exits) and waits
    up to ``grace`` seconds before killing it. Idempotent.
    """

    def __init__(
        self, system: ActorSystem, name: str, process: anyio.abc.Process, link: Link
    ) -> None:
        self.system = system
        self.name = name
        self.process = process
        self.link = link
        self._closed = False

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    async def wait(self) -> int:
        """Wait for the child to exit; its return code."""
        return await self.process.wait()

    def kill(self) -> None:
        """SIGKILL the child (its death is then seen on the link as EOF)."""
        if self.process.returncode is None:
            self.process.kill()

    async def aclose(self, grace: float = 5.0) -> None:
        if self._closed:
            return
        self._closed = True
        self.system._forget_child(self)  # noqa: SLF001
        with anyio.CancelScope(shield=True):
            await self.link.aclose(f"child {self.name!r} closed by parent")
            with anyio.move_on_after(grace):
                await self.process.wait()
            if self.process.returncode is None:
                log.warning("child_killed", child=self.name, pid=self.pid, grace=grace)
                self.process.kill()
                await self.process.wait()
            await self.process.aclose()

    def __repr__(self) -> str:
        return f"<ChildProcess {self.name!r} pid={self.pid} returncode={self.returncode}>"


def child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a child Python, with ``sys.path`` as its PYTHONPATH."""
    entries = [p for p in sys.path if p and os.path.isdir(p)]
    path = os.pathsep.join(dict.fromkeys([os.getcwd(), *entries]))
    return {**os.environ, **(extra or {}), "PYTHONPATH": path}


async def start_child(
    system: ActorSystem, name: str, *, init: str | None = None, env: dict[str, str] | None = None
) -> ChildProcess:
    """Start a child process hosting an actor system called ``name``; see the module doc.

    ``init`` is an optional ``"package.module:function"`` called with the child's
    system once it runs (sync or async), e.g. to spawn its actors. The child inherits
    the parent's ``sys.path``, its shared secret and frame cap.
    """
    parent_end, child_end = multiprocessing.Pipe(duplex=True)
    child_fd = child_end.fileno()
    command = [
        sys.executable,
        "-m",
        "actorwork.transports.pipe",
        str(child_fd),
        "--name",
        name,
        "--parent-pid",
        str(os.getpid()),
        "--max-frame-size",
        str(system.options.max_frame_size),
    ]
    if init is not None:
        command += ["--init", init]
    child_env = child_environment(env)
    if system.options.secret is not None:
        child_env["ACTORWORK_PIPE_SECRET"] = system.options.secret.hex()
    try:
        process = await anyio.open_process(
            command, stdin=None, stdout=None, stderr=None, env=child_env, pass_fds=(child_fd,)
        )
    except OSError as exc:
        parent_end.close()
        child_end.close()
        raise TransportError(f"cannot start child process {name!r}: {exc}") from exc
    child_end.close()
    parent_fd = os.dup(parent_end.fileno())
    parent_end.close()
    try:
        connection = await PipeTransport().connect(Address("pipe", str(parent_fd)), system.options)
    except BaseException:
        process.kill()
        with anyio.CancelScope(shield=True):
            await process.wait()
            await process.aclose()
        raise
    try:
        link = system.adopt(connection)
    except BaseException:  # the system closed while the child started
        with anyio.CancelScope(shield=True):
            await connection.aclose()
            process.kill()
            await process.wait()
            await process.aclose()
        raise
    return ChildProcess(system, name, process, link)


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


async def _child_main(args: argparse.Namespace) -> None:
    from actorwork.runtime.system import ActorSystem

    secret_hex = os.environ.pop("ACTORWORK_PIPE_SECRET", "")
    system = ActorSystem(
        args.name,
        secret=bytes.fromhex(secret_hex) or None,
        max_frame_size=args.max_frame_size,
        allow_remote_spawn=True,
    )
    async with system:
        if args.init:
            result = import_object(args.init)(system)
            if inspect.isawaitable(result):
                await result
        connection = await PipeTransport().listen(Address("pipe", str(args.fd)), system.options)
        await connection.serve(system.serve_connection)


def main(argv: list[str] | None = None) -> None:
    """Entry point of a child process (``python -m actorwork.transports.pipe FD ...``)."""
    parser = argparse.ArgumentParser(prog="actorwork.transports.pipe")
    parser.add_argument("fd", type=int)
    parser.add_argument("--name", default="child")
    parser.add_argument("--parent-pid", type=int, default=os.getppid())
    parser.add_argument("--max-frame-size", type=int, default=16 * 1024 * 1024)
    parser.add_argument("--init", default=None)
    args = parser.parse_args(argv)
    _die_with_parent(args.parent_pid)
    from actorwork.cli import configure_logging

    # A child is a program of its own: its logs go to stderr, never into stdout.
    configure_logging(os.environ.get("ACTORWORK_LOG_LEVEL", "info"))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when the child stops
    anyio.run(_child_main, args)


if __name__ == "__main__":
    main()
