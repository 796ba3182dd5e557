"""Fixtures for the runtime tests: each test is written once and run over every route.

A *route* is how the test reaches the actors under test: ``local`` (a LocalRef in the
same system) or a transport (``inproc``, ``unix``, ``tcp``: a RemoteRef made by a
second system with ``client.remote(...)``).

The fixtures return factories of async context managers instead of running systems,
because an ActorSystem owns an anyio task group, and pytest-asyncio sets a fixture up
and tears it down in tasks other than the test's: the test enters the context itself,
so the systems close in the task that opened them, even when the test fails.

The messages and actors more than one test file uses are defined here, once; the test
files import them relatively (``from .conftest import Echo``), so that this module is
the one pytest loaded and each message tag is defined once.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
import structlog.testing

from actorwork import Actor, ActorRef, ActorSystem, Message
from actorwork.messages import Ping, Pong

TRANSPORTS = ("inproc", "unix", "tcp")
ROUTES = ("local", *TRANSPORTS)


class Echo(Message, tag="test.runtime.echo"):
    text: str


class EchoReply(Message, tag="test.runtime.echo-reply"):
    text: str


class Block(Message, tag="test.runtime.block"):
    """Handled by holding it until the test sets the actor's ``release`` event."""


class Holding(Actor):
    """Base of the actors that hold a message until the test lets it go.

    ``blocked`` is set once the actor holds one; setting ``release`` lets it go on.
    """

    def __init__(self) -> None:
        self.blocked = anyio.Event()
        self.release = anyio.Event()

    async def hold(self) -> None:
        self.blocked.set()
        await self.release.wait()


class Outcome:
    """What an awaitable run in the background returned or raised; ``done`` is then set."""

    def __init__(self) -> None:
        self.done = anyio.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    async def run(self, awaitable: Awaitable[Any]) -> None:
        try:
            self.value = await awaitable
        except Exception as exc:
            self.error = exc
        finally:
            self.done.set()


def _listen_address(scheme: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    if scheme == "inproc":
        return f"inproc://runtime-{uuid.uuid4().hex}"
    if scheme == "unix":
        # mktemp keeps the path short: sockaddr_un holds about 100 bytes.
        return f"unix://{tmp_path_factory.mktemp('sock') / 'server.sock'}"
    if scheme == "tcp":
        return "tcp://127.0.0.1:0"
    raise AssertionError(f"no listen address for scheme {scheme!r}")


@dataclass
class SystemPair:
    """A listening ``server`` and a ``client`` that reaches it at ``address``."""

    server: ActorSystem
    client: ActorSystem
    address: str

    async def remote(self, name: str) -> ActorRef:
        """The client's ref to the server's actor ``name``."""
        return await self.client.remote(self.address, name)


@dataclass
class Host:
    """Where the actors under test run (``system``) and how the test reaches them.

    For the ``local`` route ``client`` is ``system`` and ``address`` is None.
    """

    route: str
    system: ActorSystem
    client: ActorSystem
    address: str | None

    @property
    def remote(self) -> bool:
        return self.address is not None

    async def spawn(self, actor: Actor, *, name: str, **options: Any) -> ActorRef:
        """Spawn ``actor`` in ``system``; return the ref the test should use."""
        await self.system.spawn(actor, name=name, **options)
        return await self.ref(name)

    async def ref(self, name: str) -> ActorRef:
        """The test's ref to actor ``name``: local, or the client's RemoteRef."""
        if self.address is None:
            return self.system.ref(name)
        return await self.client.remote(self.address, name)

    async def settle(self) -> None:
        """Return once every message sent so far sits in its recipient's mailbox.

        Tasks started by the test first run until they block (a send queues its frame
        or mailbox item before it first waits); then, for a remote route, a ping
        round trip on the same connection proves the server has routed every frame
        sent before it. Do not call it while a remote mailbox is full: the ping would
        wait behind the blocked frame.
        """
        await anyio.wait_all_tasks_blocked()
        if self.address is not None:
            system_actor = await self.client.remote(self.address, "_system")
            assert await system_actor.ask(Ping()) == Pong()


OpenPair = Callable[..., AbstractAsyncContextManager[SystemPair]]
OpenHost = Callable[..., AbstractAsyncContextManager[Host]]


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    """Each transport scheme in turn."""
    return str(request.param)


@pytest.fixture(params=ROUTES)
def route(request: pytest.FixtureRequest) -> str:
    """``local`` and each transport scheme in turn."""
    return str(request.param)


@pytest.fixture
def system_pair(transport: str, tmp_path_factory: pytest.TempPathFactory) -> OpenPair:
    """Factory: ``async with system_pair(**server_options) as pair`` over ``transport``.

    The server may be closed early with ``await pair.server.aclose()``, provided the
    test opened no task group or cancel scope after the pair (anyio scopes nest).
    """

    @asynccontextmanager
    async def open_pair(**server_options: Any) -> AsyncIterator[SystemPair]:
        listen = _listen_address(transport, tmp_path_factory)
        # The server is entered last, so a test may close it early with aclose().
        async with (
            ActorSystem("client") as client,
            ActorSystem("server", listen=listen, **server_options) as server,
        ):
            assert server.address is not None
            yield SystemPair(server, client, server.address)

    return open_pair


@pytest.fixture
def actor_host(route: str, tmp_path_factory: pytest.TempPathFactory) -> OpenHost:
    """Factory: ``async with actor_host(**system_options) as host`` over ``route``."""

    @asynccontextmanager
    async def open_host(**system_options: Any) -> AsyncIterator[Host]:
        if route == "local":
            async with ActorSystem("local", **system_options) as system:
                yield Host(route, system, system, None)
            return
        listen = _listen_address(route, tmp_path_factory)
        async with (
            ActorSystem("server", listen=listen, **system_options) as server,
            ActorSystem("client") as client,
        ):
            yield Host(route, server, client, server.address)

    return open_host


@pytest.fixture
def captured_logs() -> Iterator[list[MutableMapping[str, Any]]]:
    """Every structlog event logged during the test, as dicts (entered before any spawn)."""
    with structlog.testing.capture_logs() as entries:
        yield entries
