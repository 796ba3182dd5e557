"""A :class:`Node` is one process's view of a configured deployment.

The configuration says where each actor lives (``[actors.NAME] address``). A node
gives user code a ref to any of them by name, without the code knowing whether the
actor runs in this process or another::

    async with Node(load_config()) as node:
        greeter = await node.ref("greeter")
        print(await greeter.ask(Greet("ada")))

Actors placed at an ``inproc://`` address are hosted by the node itself, in a second
actor system in this process, and reached through the inproc transport — so the
messages are encoded and decoded exactly as they would be between hosts. Actors at
any other address are hosted by ``actorwork serve`` in the process that listens there
(see :meth:`Node.host`). Moving an actor to another process is therefore a change of
one address in the config file.
"""

from __future__ import annotations

from collections import defaultdict
from contextlib import AsyncExitStack
from typing import Self

from anyio.abc import AsyncResource

from actorwork._importing import import_object
from actorwork.addressing import parse_address
from actorwork.config import Config, SystemSettings, TLSSettings
from actorwork.errors import ActorNotFound, ConfigError
from actorwork.runtime.actor import Actor
from actorwork.runtime.ref import ActorRef
from actorwork.runtime.system import ActorSystem
from actorwork.transports.base import Transport
from actorwork.transports.tcp import TCPTransport, client_context, server_context

__all__ = ["Node", "system_from_settings", "tls_transports"]


def tls_transports(tls: TLSSettings, *, listen: str | None = None) -> dict[str, Transport]:
    """The transports by scheme that ``[system.tls]`` asks for: a ``tcp`` one with its
    contexts when TLS is on, nothing when it is off.

    ConfigError names a file that cannot be loaded, or a ``tcp://`` ``listen`` address
    that TLS is on for without a certificate to show.
    """
    if not tls.enabled:
        return {}
    listens_on_tcp = listen is not None and parse_address(listen).scheme == "tcp"
    if listens_on_tcp and not tls.cert:
        raise ConfigError(
            f"listening on {listen!r} with TLS needs system.tls.cert, the certificate to show "
            f"(system.tls has ca = {tls.ca!r} only)"
        )
    try:
        server = (
            server_context(
                cert=tls.cert, key=tls.key, ca=tls.ca, require_client_cert=tls.require_client_cert
            )
            if tls.cert
            else None
        )
        client = client_context(cert=tls.cert, key=tls.key, ca=tls.ca)
    except ConfigError as exc:
        raise ConfigError(f"system.tls: {exc}") from None
    return {
        "tcp": TCPTransport(
            server_ssl=server, client_ssl=client, server_hostname=tls.server_hostname or None
        )
    }


def system_from_settings(
    settings: SystemSettings, *, name: str | None = None, listen: str | None = None
) -> ActorSystem:
    """An :class:`ActorSystem` configured by ``[system]`` (``listen`` overrides it).

    With ``[system.tls]``, its ``tcp://`` connections in and out use TLS.
    """
    address = listen if listen is not None else (settings.listen or None)
    return ActorSystem(
        name or settings.name,
        listen=address,
        transports=tls_transports(settings.tls, listen=address),
        secret=settings.secret_bytes(),
        max_frame_size=settings.max_frame_size,
        handshake_timeout=settings.handshake_timeout,
        idle_timeout=settings.idle_timeout or None,
        frame_timeout=settings.frame_timeout or None,
        max_buffered=settings.max_buffered or None,
        max_connections=settings.max_connections,
        mailbox_capacity=settings.mailbox_capacity,
        ask_timeout=settings.ask_timeout,
        liveness_timeout=settings.liveness_timeout or None,
    )


def make_actor(config: Config, name: str) -> Actor:
    """Instantiate the configured factory of actor ``name``."""
    factory = config.actors[name].factory
    try:
        target = import_object(factory)
    except ValueError as exc:
        raise ConfigError(f"{config.source}: actors.{name}.factory = {factory!r}: {exc}") from exc
    actor = target()
    if not isinstance(actor, Actor):
        raise ConfigError(
            f"{config.source}: actors.{name}.factory = {factory!r} made "
            f"{type(actor).__qualname__}, not an Actor"
        )
    return actor


class Node(AsyncResource):
    """Opens this process's actor system and hosts the ``inproc://`` actors."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.system = system_from_settings(config.system)
        self.hosts: dict[str, ActorSystem] = {}
        self._stack: AsyncExitStack | None = None

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:  # unwinds what started if a later part fails
            await stack.enter_async_context(self.system)
            local = [
                name
                for name, placement in self.config.actors.items()
                if placement.address.startswith("inproc://")
            ]
            await self._host(stack, local)
            self._stack = stack.pop_all()
        return self

    async def aclose(self) -> None:
        """Close the hosting systems, then this process's system. Idempotent."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def host(self, names: list[str] | None = None) -> dict[str, str]:
        """Host actors (by default every one not at an inproc address) at their addresses.

        Returns ``{actor name: address}``. The systems close with the node.
        """
        if self._stack is None:
            raise RuntimeError("use the node in 'async with' before hosting actors")
        chosen = (
            names
            if names is not None
            else [
                name
                for name, placement in self.config.actors.items()
                if not placement.address.startswith("inproc://")
            ]
        )
        for name in chosen:
            if name not in self.config.actors:
                raise ConfigError(
                    f"{self.config.source}: no [actors.{name}] section "
                    f"(configured: {', '.join(sorted(self.config.actors)) or 'none'})"
                )
        await self._host(self._stack, chosen)
        return {name: self.config.actors[name].address for name in chosen}

    async def _host(self, stack: AsyncExitStack, names: list[str]) -> None:
        by_address: dict[str, list[str]] = defaultdict(list)
        for name in names:
            by_address[self.config.actors[name].address].append(name)
        for address, hosted in by_address.items():
            system = self.hosts.get(address)
            if system is None:
                system = system_from_settings(
                    self.config.system, listen=address, name=f"{self.config.system.name}-host"
                )
                await stack.enter_async_context(system)
                self.hosts[address] = system
            for name in hosted:
                await system.spawn(make_actor(self.config, name), name=name)

    async def ref(self, name: str) -> ActorRef:
        """A ref to the configured actor ``name``, wherever it runs."""
        placement = self.config.actors.get(name)
        if placement is None:
            raise ActorNotFound(
                f"no actor {name!r} in {self.config.source} "
                f"(configured: {', '.join(sorted(self.config.actors)) or 'none'})"
            )
        return await self.system.remote(placement.address, name)
