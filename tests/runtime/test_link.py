"""The link's fast paths: a frame written straight to an idle connection must never
overtake frames the writer task still holds, and the outbox must still push back.

A scripted connection stands in for a transport, so the test decides when the
connection takes frames synchronously and when a write is still in flight.
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from actorwork import ActorSystem
from actorwork.errors import ConnectionClosed
from actorwork.runtime.link import Link
from actorwork.transports.base import Connection


class ScriptedConnection(Connection):
    """Records what is sent; ``accept_nowait`` and ``release`` steer the two send paths."""

    peer_name = "scripted"
    peer_description = "scripted connection"

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.accept_nowait = True
        self.writing = anyio.Event()  # set once send_many has started
        self.release = anyio.Event()  # send_many finishes once this is set
        self._closed = anyio.Event()

    def send_nowait(self, frames: Sequence[bytes]) -> bool:
        if not self.accept_nowait:
            return False
        self.sent.extend(frames)
        return True

    async def send(self, frame: bytes) -> None:
        await self.send_many((frame,))

    async def send_many(self, frames: Sequence[bytes]) -> None:
        self.writing.set()
        await self.release.wait()
        self.sent.extend(frames)

    async def receive(self) -> bytes:
        await self._closed.wait()
        raise ConnectionClosed("connection is closed")

    async def aclose(self) -> None:
        self._closed.set()
        self.release.set()


async def test_direct_write_waits_behind_a_write_in_flight(no_leaks: None) -> None:
    connection = ScriptedConnection()
    async with ActorSystem("fast-path") as system:
        link: Link = system.adopt(connection)
        assert link.enqueue(b"1")  # idle: straight to the connection
        assert connection.sent == [b"1"]

        connection.accept_nowait = False
        link.enqueue(b"2")  # refused: the writer task takes it and blocks in send_many
        await connection.writing.wait()
        connection.accept_nowait = True
        link.enqueue(b"3")  # the connection would take it now, but 2 is still in flight
        assert connection.sent == [b"1"]

        connection.release.set()
        await anyio.wait_all_tasks_blocked()  # the writer has sent 2, then 3, and idles
        assert connection.sent == [b"1", b"2", b"3"]
        await link.aclose()


async def test_outbox_pushes_back_while_the_connection_is_busy(no_leaks: None) -> None:
    connection = ScriptedConnection()
    connection.accept_nowait = False
    async with ActorSystem("back-pressure") as system:
        link: Link = system.adopt(connection)
        link.enqueue(b"first")
        await connection.writing.wait()
        results = [link.enqueue(str(i).encode()) for i in range(2000)]
        assert results[0] is True
        assert results[-1] is False  # over the high-water mark: senders must wait
        drained = anyio.Event()

        async def wait_for_room() -> None:
            await link.drained()
            drained.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_for_room)
            await anyio.wait_all_tasks_blocked()
            assert not drained.is_set()
            connection.release.set()
        assert connection.sent == [b"first", *(str(i).encode() for i in range(2000))]
        await link.aclose()
