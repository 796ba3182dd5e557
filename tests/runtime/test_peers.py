"""Peers that come and go, or wait in silence (F23, F24).

A peer that watches an actor and leaves must leave nothing behind: its watch, its
closed link and the refs bound to it go with the connection, as a Pool that sends
``WatchActor('scheduler')`` on every reconnect would otherwise grow the Scheduler for
ever. And a peer that is silent because it waits for an answer is not idle.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from actorwork import Actor, ActorSystem
from actorwork.messages import Ping, Pong, Terminated
from actorwork.runtime.link import Link
from actorwork.runtime.ref import RemoteRef

pytestmark = pytest.mark.usefixtures("no_leaks")


async def until(condition: Callable[[], bool], *, limit: float = 30) -> None:
    """Return once ``condition()`` holds; the state polled has no event to wait on."""
    with anyio.fail_after(limit):
        while not condition():  # noqa: ASYNC110 - counters of the runtime, not events
            await anyio.sleep(0.01)


RECONNECTS = 1000


class Target(Actor):
    async def receive(self, message: Ping) -> Pong:
        return Pong(message.payload)


class Slow(Actor):
    async def receive(self, message: Ping) -> Pong:
        await anyio.sleep(1.0)  # over three of the server's idle deadlines
        return Pong(message.payload)


class Watcher(Actor):
    """Counts the Terminated notices it hears."""

    def __init__(self) -> None:
        self.heard = 0

    async def receive(self, message: Terminated) -> None:
        self.heard += 1


def live(kind: type) -> int:
    gc.collect()
    return sum(1 for obj in gc.get_objects() if type(obj) is kind)


def listen_address(scheme: str, tmp_path: Path) -> str:
    return f"unix://{tmp_path / 'churn.sock'}" if scheme == "unix" else "tcp://127.0.0.1:0"


@pytest.mark.parametrize("scheme", ["unix", "tcp"])
async def test_a_thousand_watch_and_leave_reconnects_leave_nothing_behind(
    scheme: str, tmp_path: Path
) -> None:
    server = ActorSystem("server", listen=listen_address(scheme, tmp_path))
    async with server, ActorSystem("client") as client:
        assert server.address is not None
        await server.spawn(Target(), name="scheduler")
        watcher = Watcher()
        pool = await client.spawn(watcher, name="pool")
        watched = server._cells["scheduler"]
        start = (len(watched.watchers), len(server.links), live(Link), live(RemoteRef))

        for _ in range(RECONNECTS):  # what a Pool does each time it reaches the Scheduler
            link = await client.connect(server.address)
            client.watch(RemoteRef(client, "scheduler", link=link), pool)
            # _system handles the watch before this ping: the server now holds it.
            assert await RemoteRef(client, "_system", link=link).ask(Ping()) == Pong()
            await link.aclose()
        del link

        await until(lambda: not server.links and watcher.heard == RECONNECTS)
        end = (len(watched.watchers), len(server.links), live(Link), live(RemoteRef))
    assert end == start


async def test_a_peer_waiting_for_a_slow_answer_is_not_idle(tmp_path: Path) -> None:
    address = f"unix://{tmp_path / 'slow.sock'}"
    server = ActorSystem("server", listen=address, idle_timeout=0.3)
    async with server, ActorSystem("client") as client:
        await server.spawn(Slow(), name="slow")
        ref = await client.remote(address, "slow")
        link = await ref.link()
        assert await ref.ask(Ping(b"late"), timeout=30) == Pong(b"late")
        assert not link.closed or "idle" not in link.close_reason
        # Once answered, the silent peer is idle again, and is let go.
        await until(lambda: link.closed)
