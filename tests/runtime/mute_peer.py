"""Run as a process of its own: an actor system whose ``mute`` actor never answers.

``python -m tests.runtime.mute_peer ADDRESS`` listens at ``ADDRESS``, prints ``ready``
once it does, and runs until killed. Its ``_system`` actor answers pings as every
system's does, so the process is alive and silent only about ``mute``'s answers.
"""

from __future__ import annotations

import sys

import anyio

from actorwork import Actor, ActorSystem
from actorwork.messages import Ping, Pong


class Mute(Actor):
    """Takes a Ping and holds it for ever."""

    async def receive(self, message: Ping) -> Pong:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")


async def main(address: str) -> None:
    async with ActorSystem("mute-peer", listen=address) as system:
        await system.spawn(Mute(), name="mute")
        print("ready", flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1])
