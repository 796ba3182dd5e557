"""``tcp://`` — TCP over anyio, optionally with TLS, for processes on other hosts.

Reach: the network. Address: ``tcp://host:port`` (``tcp://[::1]:7400`` for IPv6;
port 0 picks a free port, which the listener's ``address`` then shows).
Guarantees: frames arrive in order, whole, or the connection breaks; a killed peer's
kernel resets the connection at once, a vanished host is noticed by the runtime's
heartbeats. Security: a listener that is not on loopback requires a shared secret
(HMAC challenge in the handshake, see ``_handshake``); TLS is enabled by passing
``ssl.SSLContext`` objects to :class:`TCPTransport`. The TLS handshake and the
actorwork handshake share one deadline.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import ClassVar

import anyio
import anyio.abc
from anyio.streams.tls import TLSStream

from actorwork.addressing import Address, format_address, is_loopback_host, split_host_port
from actorwork.errors import ConfigError, TransportError
from actorwork.transports._socket import (
    SocketConnection,
    SocketListener,
    listening_sockets,
    open_socket_connection,
)
from actorwork.transports._stream import StreamListener, open_stream_connection
from actorwork.transports.base import Connection, ConnectionOptions, Listener, Transport

__all__ = ["TCPTransport"]


def _connect_error(address: Address, options: ConnectionOptions, exc: Exception) -> Exception:
    if isinstance(exc, TimeoutError):
        return TransportError(
            f"cannot connect to {str(address)!r}: no answer within {options.handshake_timeout}s"
        )
    if isinstance(exc, (OSError, ssl.SSLError, anyio.BrokenResourceError)):
        return TransportError(f"cannot connect to {str(address)!r}: {exc}")
    return exc


class TCPTransport(Transport):
    """Connections over TCP.

    ``server_ssl`` (a server-side ``SSLContext``) turns on TLS for listeners,
    ``client_ssl`` for outgoing connections; ``server_hostname`` overrides the name
    checked against the server's certificate.
    """

    scheme: ClassVar[str] = "tcp"

    def __init__(
        self,
        *,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> None:
        self.server_ssl = server_ssl
        self.client_ssl = client_ssl
        self.server_hostname = server_hostname

    def check_address(self, address: Address) -> None:
        split_host_port(address)

    async def connect(self, address: Address, options: ConnectionOptions) -> Connection:
        host, port = split_host_port(address)
        if self.client_ssl is None:
            return await self._connect_plain(address, host, port, options)
        raw: anyio.abc.SocketStream | None = None
        try:
            with anyio.fail_after(options.handshake_timeout):
                raw = await anyio.connect_tcp(host, port)
                stream: anyio.abc.ByteStream = raw
                if self.client_ssl is not None:
                    stream = await TLSStream.wrap(
                        raw,
                        ssl_context=self.client_ssl,
                        hostname=self.server_hostname or host,
                        standard_compatible=False,
                    )
        except BaseException as exc:
            if raw is not None:
                with anyio.CancelScope(shield=True):
                    await raw.aclose()
            if isinstance(exc, Exception):
                raise _connect_error(address, options, exc) from exc
            raise
        return await open_stream_connection(stream, options, description=str(address))

    async def _connect_plain(
        self, address: Address, host: str, port: int, options: ConnectionOptions
    ) -> Connection:
        loop = asyncio.get_running_loop()

        async def create(factory: Callable[[], SocketConnection]) -> object:
            try:
                with anyio.fail_after(options.handshake_timeout):
                    return await loop.create_connection(factory, host, port)
            except (OSError, TimeoutError) as exc:
                raise _connect_error(address, options, exc) from exc

        return await open_socket_connection(create, options, description=str(address))

    async def listen(self, address: Address, options: ConnectionOptions) -> Listener:
        host, port = split_host_port(address)
        if options.secret is None and not is_loopback_host(host):
            raise ConfigError(
                f"listening on {str(address)!r}, which is not loopback, requires a shared secret; "
                "set 'secret' (or ACTORWORK_SECRET), or listen on 127.0.0.1"
            )
        try:
            multi = await anyio.create_tcp_listener(local_host=host, local_port=port)
        except OSError as exc:
            raise TransportError(
                f"cannot listen on {str(address)!r}: {exc.strerror or exc}"
            ) from exc
        listeners = [item for item in multi.listeners if isinstance(item, anyio.abc.SocketListener)]
        bound_port = listeners[0].extra(anyio.abc.SocketAttribute.local_port)
        shown_host = f"[{host}]" if ":" in host else host
        bound = format_address(self.scheme, f"{shown_host}:{bound_port}")
        server_ssl = self.server_ssl
        if server_ssl is None:
            return SocketListener(await listening_sockets(listeners), options, address=bound)

        async def wrap(stream: anyio.abc.ByteStream) -> anyio.abc.ByteStream:
            return await TLSStream.wrap(
                stream, server_side=True, ssl_context=server_ssl, standard_compatible=False
            )

        return StreamListener(listeners, options, address=bound, wrap=wrap)
