"""F29, the bridge's part: a ``docker://`` Unix socket that other users and containers
can connect to (mode 0o666, for the container's user) is refused without a secret."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from actorwork import ActorSystem
from actorwork.addressing import parse_address
from actorwork.errors import ConfigError
from actorwork.messages import Ping, Pong
from actorwork.transports.base import ConnectionOptions
from actorwork.transports.docker import DockerTransport


async def test_an_open_socket_without_a_secret_is_refused(tmp_path: Path) -> None:
    socket_path = tmp_path / "pool.sock"
    address = f"docker://{socket_path}"
    with pytest.raises(ConfigError) as refused:
        await DockerTransport().listen(parse_address(address), ConnectionOptions())
    message = str(refused.value)
    assert repr(address) in message
    assert "0o666" in message
    assert "ACTORWORK_SYSTEM__SECRET" in message
    assert "pool.sock" not in os.listdir(tmp_path)  # refused before anything was bound

    with pytest.raises(ConfigError, match="requires a shared secret"):
        async with ActorSystem("bridge", listen=address):
            pass


@pytest.mark.usefixtures("no_leaks")
async def test_a_socket_with_a_secret_or_of_its_owner_alone_is_served(tmp_path: Path) -> None:
    open_socket = tmp_path / "open.sock"
    async with (
        ActorSystem("bridge", listen=f"docker://{open_socket}", secret="s3cret") as server,
        ActorSystem("container", secret="s3cret") as client,
    ):
        assert stat.S_IMODE(os.stat(open_socket).st_mode) == 0o666  # the container's user
        ref = await client.remote(f"docker://{open_socket}", "_system")
        assert await ref.ask(Ping(b"x"), timeout=10) == Pong(b"x")
        assert server.address is not None

    own_socket = tmp_path / "own.sock"
    own = DockerTransport(mode=0o600)
    async with (
        ActorSystem("bridge", listen=f"docker://{own_socket}", transport=own),
        ActorSystem("peer") as client,
    ):
        ref = await client.remote(f"docker://{own_socket}", "_system")
        assert await ref.ask(Ping(b"y"), timeout=10) == Pong(b"y")
