"""The actor demo run by ``actorwork demo``: a greeter placed by configuration.

It shows the point of the runtime: the same code asks the same actor, and only the
configured address decides whether that actor lives in this process (``inproc://``),
in another process on this host (``unix://``) or behind TCP (``tcp://``).
"""

from __future__ import annotations

import os
from typing import assert_never

from actorwork.messages import Message
from actorwork.runtime.actor import Actor

__all__ = ["DEFAULT_CONFIG", "Greet", "Greeter", "Greeting"]

DEFAULT_CONFIG = """
[system]
name = "demo"

[actors.greeter]
factory = "actorwork.demo:Greeter"
address = "inproc://demo-greeter"
"""


class Greet(Message, tag="demo.greet"):
    name: str


class Greeting(Message, tag="demo.greeting"):
    text: str
    pid: int
    system: str
    count: int


class Greeter(Actor):
    """Greets by name and counts how many it has greeted."""

    def __init__(self) -> None:
        self.count = 0

    async def receive(self, message: Greet) -> Greeting:
        match message:
            case Greet(name=name):
                if not name.strip():
                    raise ValueError(f"cannot greet an empty name {name!r}")
                self.count += 1
                self.log.info("greeted", name=name, count=self.count)
                return Greeting(f"hello, {name}", os.getpid(), self.system.name, self.count)
            case _:
                assert_never(message)
