"""TCP connections send small frames at once: Nagle's algorithm is off on both ends."""

from __future__ import annotations

import socket

from actorwork import ActorSystem
from actorwork.messages import Ping, Pong


async def test_both_ends_of_a_tcp_link_have_nodelay() -> None:
    async with (
        ActorSystem("server", listen="tcp://127.0.0.1:0") as server,
        ActorSystem("client") as client,
    ):
        assert server.address is not None
        ref = await client.remote(server.address, "_system")
        assert await ref.ask(Ping()) == Pong()
        links = client.links + server.links
        assert len(links) == 2
        for link in links:
            transport = link.connection._transport  # a SocketConnection's asyncio transport
            sock = transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1, link
