"""The program inside a worker container: ``python -m actorwork.cli.bridge ADDRESS``.

An actor system that connects to ``ADDRESS`` over :mod:`actorwork.transports.docker`
(with the secret in ``$ACTORWORK_BRIDGE_SECRET``), lets the pool spawn actors in it,
and exits when that connection ends.
"""

from __future__ import annotations

import argparse
import os
import signal

import anyio

from actorwork._log import get_logger
from actorwork.addressing import parse_address
from actorwork.cli.main import configure_logging
from actorwork.runtime.system import ActorSystem
from actorwork.transports import DEFAULT_MAX_FRAME_SIZE
from actorwork.transports.docker import SECRET_VARIABLE, DockerTransport

log = get_logger(__name__)


async def _container_main(address_text: str, name: str, max_frame_size: int) -> None:
    secret_hex = os.environ.pop(SECRET_VARIABLE, "")
    system = ActorSystem(
        name,
        secret=bytes.fromhex(secret_hex) or None,
        max_frame_size=max_frame_size,
        allow_remote_spawn=True,
    )
    address = parse_address(address_text)
    async with system:
        connection = await DockerTransport().connect(address, system.options)
        log.info("bridge_connected", system=name, address=address_text)
        await system.serve_connection(connection)
    # The pool is gone: leave now, even if a sync work still runs in a thread (the
    # interpreter would otherwise wait for it at exit).
    log.info("bridge_closed", system=name)
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    """Entry point in a container (``python -m actorwork.cli.bridge ADDRESS ...``)."""
    parser = argparse.ArgumentParser(prog="actorwork.cli.bridge")
    parser.add_argument("address", help="the bridge to connect to, docker:///... or docker://h:p")
    parser.add_argument("--name", default="container")
    parser.add_argument("--max-frame-size", type=int, default=DEFAULT_MAX_FRAME_SIZE)
    args = parser.parse_args(argv)
    configure_logging(os.environ.get("ACTORWORK_LOG_LEVEL", "info"))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the pool decides when a worker stops
    anyio.run(_container_main, args.address, args.name, args.max_frame_size)


if __name__ == "__main__":
    main()
