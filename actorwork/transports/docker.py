"""``docker://`` — a socket bridged into a container, for workers in containers.

Reach: this host and the containers of its Docker Engine, or, for a remote engine,
containers on another host. Two forms of address, told apart by the location:

* ``docker:///abs/dir/pool.sock`` — a Unix socket in a host directory that is
  bind-mounted into the container; the container connects to the same socket at its
  path inside the mount. This is the form for a local engine.
* ``docker://host:port`` — the same bridge over TCP, for a remote engine
  (``DOCKER_HOST=tcp://...``), whose containers cannot see this host's files. A
  listener that is not on loopback requires a shared secret (the HMAC handshake of
  every transport); a pool always sets one.

Guarantees are those of ``unix://`` and ``tcp://``: frames arrive in order, whole, or
the connection breaks; a killed container is seen at once (its end of the socket
closes). Unix listeners make the socket file mode ``0o666`` by default, because the
container's user is not this host's user: what keeps strangers out is the shared
secret, which a :mod:`~actorwork.pool.containers` always sets. A Unix listener without
a secret on a socket others may connect to is refused (ConfigError), as a ``tcp://``
listener off loopback is: every local user and container could speak to it.

The container side runs ``python -m actorwork.cli.bridge ADDRESS --name NAME``:
an actor system that connects to ``ADDRESS`` (with the secret in
``$ACTORWORK_BRIDGE_SECRET``), lets the other side spawn actors in it, and exits when
that connection ends. Nothing here imports the Docker client; the containers are the
pool's business (:mod:`actorwork.pool.containers`).

A bridge's listener keeps every limit of ``ConnectionOptions`` but the idle deadline:
a container worker waiting for work sends nothing, and the pool that listens owns it
and notices its end at once (the socket closes).
"""

from __future__ import annotations

import ssl
from dataclasses import replace
from typing import ClassVar

from actorwork._log import get_logger
from actorwork.addressing import Address
from actorwork.errors import AddressError, ConfigError
from actorwork.transports.base import Connection, ConnectionOptions, Listener, Transport
from actorwork.transports.tcp import SECRET_HINT, TCPTransport
from actorwork.transports.unix import UnixTransport

__all__ = ["SECRET_VARIABLE", "DockerTransport", "is_unix_bridge"]

log = get_logger(__name__)

#: The environment variable that carries the bridge's shared secret (hex) into a container.
SECRET_VARIABLE = "ACTORWORK_BRIDGE_SECRET"


def is_unix_bridge(address: Address) -> bool:
    """True for ``docker:///path`` (a bridged Unix socket), False for ``docker://host:port``."""
    return address.location.startswith("/")


class _UnixBridge(UnixTransport):
    scheme: ClassVar[str] = "docker"


class _TCPBridge(TCPTransport):
    scheme: ClassVar[str] = "docker"


class DockerTransport(Transport):
    """Connections over a socket bridged into a container; see the module docstring.

    ``mode`` is the permission of a listening Unix socket file: one that lets group or
    others connect needs a shared secret. ``server_ssl`` and ``client_ssl`` turn on TLS
    for the TCP form, as for :class:`TCPTransport`.
    """

    scheme: ClassVar[str] = "docker"

    def __init__(
        self,
        *,
        mode: int = 0o666,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
    ) -> None:
        self._unix = _UnixBridge(mode=mode)
        self._tcp = _TCPBridge(server_ssl=server_ssl, client_ssl=client_ssl)

    def _pick(self, address: Address) -> Transport:
        if not address.location:
            raise AddressError(
                f"address {str(address)!r} names neither a socket path "
                "('docker:///dir/pool.sock') nor 'host:port' ('docker://10.0.0.5:7500')"
            )
        return self._unix if is_unix_bridge(address) else self._tcp

    def check_address(self, address: Address) -> None:
        self._pick(address).check_address(address)

    async def connect(self, address: Address, options: ConnectionOptions) -> Connection:
        return await self._pick(address).connect(address, options)

    async def listen(self, address: Address, options: ConnectionOptions) -> Listener:
        chosen = self._pick(address)
        mode = self._unix.mode
        if chosen is self._unix and options.secret is None and mode & 0o077:
            raise ConfigError(
                f"listening on {str(address)!r}, a socket of mode {oct(mode)} that other "
                f"local users and containers can connect to, requires a shared secret; "
                f"{SECRET_HINT}, or give the socket a mode only its owner can use "
                "(DockerTransport(mode=0o600))"
            )
        return await chosen.listen(address, replace(options, idle_timeout=None))
