"""``tcp://`` — TCP over anyio, optionally with TLS, for processes on other hosts.

Reach: the network. Address: ``tcp://host:port`` (``tcp://[::1]:7400`` for IPv6;
port 0 picks a free port, which the listener's ``address`` then shows).
Guarantees: frames arrive in order, whole, or the connection breaks; a killed peer's
kernel resets the connection at once, a vanished host is noticed by the runtime's
heartbeats. Security: a listener that is not on loopback requires a shared secret
(HMAC challenge in the handshake, see ``_handshake``) or TLS that requires client
certificates (mutual TLS: a peer must prove a certificate the listener's CA signed).
TLS is enabled by passing ``ssl.SSLContext`` objects to :class:`TCPTransport`;
:func:`server_context` and :func:`client_context` make them from PEM files. The TLS
handshake and the actorwork handshake share one deadline.
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
from actorwork.errors import (
    ConfigError,
    ConnectionBroken,
    EndOfStream,
    HandshakeError,
    TransportError,
)
from actorwork.transports._socket import (
    SocketConnection,
    SocketListener,
    listening_sockets,
    open_socket_connection,
)
from actorwork.transports._stream import StreamListener, open_stream_connection
from actorwork.transports.base import Connection, ConnectionOptions, Listener, Transport

__all__ = [
    "SECRET_HINT",
    "TCPTransport",
    "client_context",
    "requires_client_certificates",
    "server_context",
]

#: How to give a system a shared secret, for the errors that ask for one.
SECRET_HINT = (
    "set a shared secret ('secret' of the ActorSystem; in the config [system] secret_file, "
    "or the environment variable ACTORWORK_SYSTEM__SECRET)"
)


def requires_client_certificates(context: ssl.SSLContext | None) -> bool:
    """True if ``context`` is a server's that admits only peers with a verified certificate."""
    return context is not None and context.verify_mode == ssl.CERT_REQUIRED


def _load(action: Callable[[], None], what: str) -> None:
    try:
        action()
    except (OSError, ssl.SSLError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot load {what}: {reason}") from exc


def server_context(
    *, cert: str, key: str = "", ca: str = "", require_client_cert: bool = False
) -> ssl.SSLContext:
    """A listener's TLS context: its certificate ``cert`` (PEM, with its key unless ``key``).

    ``require_client_cert`` admits only peers whose certificate the CAs in ``ca`` signed,
    and those alone: the system's CAs are not trusted for clients, since a certificate
    any public CA issued would then pass. ConfigError names a file that cannot be loaded.
    """
    if require_client_cert and not ca:
        raise ConfigError("requiring client certificates needs the CA that signs them ('ca')")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load(
        lambda: context.load_cert_chain(cert, key or None),
        f"the TLS certificate {cert!r}" + (f" with its key {key!r}" if key else ""),
    )
    if ca:
        _load(lambda: context.load_verify_locations(cafile=ca), f"the TLS CA file {ca!r}")
    context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_NONE
    return context


def client_context(*, cert: str = "", key: str = "", ca: str = "") -> ssl.SSLContext:
    """A connecting side's TLS context: it trusts the CAs in ``ca`` alone (the system's if
    empty) and checks the server's name; with ``cert`` it presents that client certificate.

    ConfigError names a file that cannot be loaded.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and name
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca:
        _load(lambda: context.load_verify_locations(cafile=ca), f"the TLS CA file {ca!r}")
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cert:
        _load(
            lambda: context.load_cert_chain(cert, key or None),
            f"the TLS certificate {cert!r}" + (f" with its key {key!r}" if key else ""),
        )
    return context


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
    checked against the server's certificate. A listener off loopback needs a shared
    secret unless ``server_ssl`` requires client certificates.
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
        try:
            return await open_stream_connection(stream, options, description=str(address))
        except HandshakeError as exc:
            if type(exc) is not HandshakeError or not isinstance(
                exc.__cause__, (EndOfStream, ConnectionBroken)
            ):
                raise
            # Under TLS 1.3 a server checks the client's certificate after the client
            # thinks the TLS handshake done: a refusal shows here as a closed connection.
            raise HandshakeError(
                f"{exc} (over TLS, a listener that requires client certificates closes the "
                "connection of a client that shows none it trusts)"
            ) from exc

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
        authenticated = options.secret is not None or requires_client_certificates(self.server_ssl)
        if not authenticated and not is_loopback_host(host):
            raise ConfigError(
                f"listening on {str(address)!r}, which is not loopback, requires a shared secret "
                f"or TLS client certificates; {SECRET_HINT}, require client certificates "
                "([system.tls] require_client_cert = true), or listen on 127.0.0.1"
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
