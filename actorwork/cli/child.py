"""The program of a child process: ``python -m actorwork.cli.child FD [--name ...]``.

Started by :func:`actorwork.runtime.child.start_child`; it runs an actor system that
serves the inherited pipe end ``FD``, lets the parent spawn actors in it, and dies with
its parent (``PR_SET_PDEATHSIG`` on Linux, and on EOF of the pipe everywhere).
"""

from __future__ import annotations

import argparse
import ctypes
import inspect
import os
import signal
import sys

import anyio

from actorwork._importing import import_object
from actorwork.addressing import Address
from actorwork.cli.main import configure_logging
from actorwork.runtime.system import ActorSystem
from actorwork.transports.pipe import PipeTransport

_PR_SET_PDEATHSIG = 1


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
    """Entry point of a child process (``python -m actorwork.cli.child FD ...``)."""
    parser = argparse.ArgumentParser(prog="actorwork.cli.child")
    parser.add_argument("fd", type=int)
    parser.add_argument("--name", default="child")
    parser.add_argument("--parent-pid", type=int, default=os.getppid())
    parser.add_argument("--max-frame-size", type=int, default=16 * 1024 * 1024)
    parser.add_argument("--init", default=None)
    args = parser.parse_args(argv)
    _die_with_parent(args.parent_pid)

    # A child is a program of its own: its logs go to stderr, never into stdout.
    configure_logging(os.environ.get("ACTORWORK_LOG_LEVEL", "info"))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when the child stops
    anyio.run(_child_main, args)


if __name__ == "__main__":
    main()
