"""Spawning a child process that runs an actor system of its own, linked over ``pipe://``.

The child runs ``python -m actorwork.cli.child FD ...`` (see :mod:`actorwork.cli.child`);
this side starts it, links the pipe's parent end to this system, and stops it when the
link closes. :meth:`ActorSystem.spawn_child` is the usual way in.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import sys
from typing import TYPE_CHECKING

import anyio
import anyio.abc

from actorwork._log import get_logger
from actorwork.addressing import Address
from actorwork.errors import TransportError
from actorwork.runtime.ref import PeerSystem
from actorwork.transports.pipe import PipeTransport

if TYPE_CHECKING:
    from actorwork.runtime.link import Link
    from actorwork.runtime.system import ActorSystem

__all__ = ["ChildProcess", "child_environment", "start_child"]

log = get_logger(__name__)

#: How long a child may take to start and answer the handshake on its pipe, at least.
#: It starts Python and imports actorwork and the work modules first, which on a loaded
#: host takes longer than the handshake deadline meant for network peers; a child that
#: dies on the way ends the wait at once (the pipe's end).
CHILD_START_TIMEOUT = 60.0


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
        "actorwork.cli.child",
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
        options = dataclasses.replace(
            system.options,
            handshake_timeout=max(system.options.handshake_timeout, CHILD_START_TIMEOUT),
        )
        connection = await PipeTransport().connect(Address("pipe", str(parent_fd)), options)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):  # it may have exited already
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
