"""SocketConnection's fast paths: batched writes keep order and push back, and frames
reach an idle reader's sink or, if it declines them, ``receive_many``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import anyio

from actorwork.transports._socket import SocketConnection, connect_socket


async def _over(sock: socket.socket) -> SocketConnection:
    loop = asyncio.get_running_loop()

    async def create(factory: Callable[[], SocketConnection]) -> object:
        return await loop.create_unix_connection(factory, sock=sock)

    return await connect_socket(create, 1 << 20, "socketpair")


@asynccontextmanager
async def connected_pair() -> AsyncIterator[tuple[SocketConnection, SocketConnection]]:
    left, right = socket.socketpair()
    a, b = await _over(left), await _over(right)
    try:
        yield a, b
    finally:
        await a.aclose()
        await b.aclose()


async def test_frames_keep_their_order_across_both_send_paths(no_leaks: None) -> None:
    async with connected_pair() as (a, b):
        sent = [str(i).encode() for i in range(300)]
        for i, frame in enumerate(sent):
            if i % 3 == 0:
                await a.send_many([frame])
            else:
                assert a.send_nowait([frame])
        received: list[bytes] = []
        with anyio.fail_after(10):
            while len(received) < len(sent):
                received += await b.receive_many()
        assert received == sent


async def test_a_sender_that_never_yields_is_pushed_back(no_leaks: None) -> None:
    async with connected_pair() as (a, _b):
        frame = b"x" * 4096
        accepted = 0
        while a.send_nowait([frame]):  # the peer never reads, and we never yield
            accepted += 1
            assert accepted < 10_000, "send_nowait never refused: writes are not bounded"


async def test_an_idle_readers_sink_takes_frames_or_leaves_them_to_it(no_leaks: None) -> None:
    async with connected_pair() as (a, b):
        taken: list[bytes] = []
        accept = True

        def sink(frames: Sequence[bytes]) -> bool:
            if accept:
                taken.extend(frames)
            return accept

        async with anyio.create_task_group() as tg:
            received: list[list[bytes]] = []

            async def read() -> None:
                received.append(await b.receive_many(sink))

            tg.start_soon(read)
            await anyio.wait_all_tasks_blocked()
            await a.send_many([b"one", b"two"])
            with anyio.fail_after(5):
                while len(taken) < 2:
                    await anyio.wait_all_tasks_blocked()
            accept = False
            await a.send_many([b"three"])
        assert taken == [b"one", b"two"]
        assert received == [[b"three"]]
