"""Ask the configured greeter; where it runs is the config file's business.

    python examples/greeter/main.py examples/greeter/inproc.toml   # same process
    actorwork --config examples/greeter/unix.toml serve &          # then:
    python examples/greeter/main.py examples/greeter/unix.toml     # another process

The code below never changes; only the ``address`` in the config file does.
"""

from __future__ import annotations

import os
import sys

import anyio
from greeter_actors import Greet

from actorwork import Node
from actorwork.cli.main import configure_logging
from actorwork.config import load_config


async def main(config_path: str) -> None:
    async with Node(load_config(config_path)) as node:
        greeter = await node.ref("greeter")
        reply = await greeter.ask(Greet("ada"))
        where = "this process" if reply.pid == os.getpid() else "another process"
        print(f"{reply.text} from pid {reply.pid} ({where})")


if __name__ == "__main__":
    configure_logging("warning")  # the application, not the library, sets up logging
    anyio.run(main, sys.argv[1] if len(sys.argv) > 1 else "examples/greeter/inproc.toml")
