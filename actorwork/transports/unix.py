"""``unix://`` — Unix domain sockets, for processes on one host.

Reach: the same host (or a container that bind-mounts the socket's directory).
Address: ``unix:///absolute/path.sock``; a relative path is taken from the working
directory. Guarantees: frames arrive in order, whole, or the connection breaks; a
killed peer is seen at once (EOF or ECONNRESET). The listener creates the socket file
with mode ``0o600`` by default, replaces a stale file nobody listens on, refuses to
steal one that is in use, and removes it when closed.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from collections.abc import Callable
from typing import ClassVar

import anyio

from actorwork.addressing import Address
from actorwork.errors import AddressError, TransportError
from actorwork.transports._socket import (
    SocketConnection,
    SocketListener,
    listening_sockets,
    open_socket_connection,
)
from actorwork.transports.base import Connection, ConnectionOptions, Listener, Transport

__all__ = ["UnixTransport"]


class UnixTransport(Transport):
    """Connections over a Unix domain socket.

    ``mode`` is the permission of the listening socket file.
    """

    scheme: ClassVar[str] = "unix"

    def __init__(self, *, mode: int = 0o600) -> None:
        self.mode = mode

    @staticmethod
    def _path(address: Address) -> str:
        if not address.location:
            raise AddressError(f"address {str(address)!r} has no socket path")
        return address.location

    def check_address(self, address: Address) -> None:
        self._path(address)

    async def connect(self, address: Address, options: ConnectionOptions) -> Connection:
        path = self._path(address)
        loop = asyncio.get_running_loop()

        async def create(factory: Callable[[], SocketConnection]) -> object:
            try:
                return await loop.create_unix_connection(factory, path)
            except OSError as exc:
                raise TransportError(
                    f"cannot connect to {str(address)!r}: {exc.strerror or exc}"
                ) from exc

        return await open_socket_connection(create, options, description=str(address))

    async def listen(self, address: Address, options: ConnectionOptions) -> Listener:
        path = self._path(address)
        _remove_stale_socket(path, address)
        try:
            listener = await anyio.create_unix_listener(path, mode=self.mode)
        except OSError as exc:
            raise TransportError(
                f"cannot listen on {str(address)!r}: {exc.strerror or exc}"
            ) from exc

        def unlink() -> None:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

        sockets = await listening_sockets([listener])
        return SocketListener(sockets, options, address=str(address), on_close=unlink)


def _remove_stale_socket(path: str, address: Address) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise TransportError(
            f"cannot listen on {str(address)!r}: {path!r} exists and is not a socket"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody answers: left behind by a process that died
    else:
        raise TransportError(
            f"cannot listen on {str(address)!r}: another process is listening there"
        )
    finally:
        probe.close()
