"""The user's actors and messages: imported by both the client and the host process.

Keep actors in a module of their own (not in the script you run), so that the client
and a host process import the very same classes.
"""

from __future__ import annotations

import os
from typing import assert_never

import actorwork


class Greet(actorwork.Message):
    name: str


class Greeting(actorwork.Message):
    text: str
    pid: int


class Greeter(actorwork.Actor):
    async def receive(self, message: Greet) -> Greeting:
        match message:
            case Greet(name=name):
                return Greeting(f"hello, {name}", os.getpid())
            case _:
                assert_never(message)
