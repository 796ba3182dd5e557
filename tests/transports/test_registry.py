"""Choosing a transport by scheme, injecting one, and registering new ones."""

from __future__ import annotations

import pytest

from actorwork import ActorSystem
from actorwork.addressing import parse_address, split_host_port
from actorwork.errors import AddressError, ConfigError, UnknownSchemeError
from actorwork.messages import Ping, Pong
from actorwork.transports import registry
from actorwork.transports.inproc import InProcTransport
from actorwork.transports.registry import known_schemes, register_transport, resolve_transport
from actorwork.transports.tcp import TCPTransport


@pytest.fixture(autouse=True)
def restored_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Schemes registered by a test are gone after it (other tests list the known ones)."""
    monkeypatch.setattr(registry, "_registered", dict(registry._registered))
    monkeypatch.setattr(registry, "_instances", dict(registry._instances))


def test_unknown_scheme_lists_the_known_ones() -> None:
    with pytest.raises(UnknownSchemeError) as caught:
        resolve_transport("tpc://127.0.0.1:7400")
    assert str(caught.value) == (
        "unknown transport scheme 'tpc' in address 'tpc://127.0.0.1:7400' "
        "(known: docker, inproc, pipe, tcp, unix)"
    )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("127.0.0.1:7400", "has no scheme"),
        ("tcp://127.0.0.1", "has no port"),
        ("tcp://127.0.0.1:http", "non-numeric port 'http'"),
        ("tcp://127.0.0.1:70000", "port 70000 outside 0..65535"),
        ("tcp://[::1:7400", r"unclosed '\['"),
    ],
)
def test_bad_addresses_are_named(text: str, fragment: str) -> None:
    with pytest.raises(AddressError, match=fragment):
        split_host_port(parse_address(text))


def test_ipv6_host_port() -> None:
    assert split_host_port(parse_address("tcp://[::1]:7400")) == ("::1", 7400)


def test_schemes_load_lazily_and_map_to_their_transports() -> None:
    assert set(known_schemes()) >= {"inproc", "pipe", "tcp", "unix"}
    _, transport = resolve_transport("tcp://127.0.0.1:1")
    assert isinstance(transport, TCPTransport)


def test_an_injected_transport_wins_over_the_registry() -> None:
    mine = TCPTransport()
    _, chosen = resolve_transport("tcp://127.0.0.1:1", mine)
    assert chosen is mine


class Loopback(InProcTransport):
    """A third-party transport: in-process, under a scheme of its own."""

    scheme = "loop"


async def test_a_registered_scheme_carries_messages() -> None:
    register_transport("loop", Loopback)
    assert "loop" in known_schemes()
    async with (
        ActorSystem("server", listen="loop://third-party") as server,
        ActorSystem("client") as client,
    ):
        ref = await client.remote("loop://third-party", "_system")
        assert await ref.ask(Ping(b"x"), timeout=10) == Pong(b"x")
    assert server.address == "inproc://third-party"  # the listener is the inproc one


def test_registered_factory_by_import_path() -> None:
    register_transport("loop2", "actorwork.transports.inproc:InProcTransport")
    _, transport = resolve_transport("loop2://x")
    assert isinstance(transport, InProcTransport)


async def test_listening_off_loopback_requires_a_secret() -> None:
    with pytest.raises(ConfigError, match="not loopback, requires a shared secret"):
        async with ActorSystem("exposed", listen="tcp://0.0.0.0:0"):
            pass


async def test_listening_off_loopback_with_a_secret_is_allowed() -> None:
    async with ActorSystem("exposed", listen="tcp://0.0.0.0:0", secret="s3cret") as system:
        assert system.address is not None
        port = system.address.rsplit(":", 1)[1]
        async with ActorSystem("client", secret="s3cret") as client:
            ref = await client.remote(f"tcp://127.0.0.1:{port}", "_system")
            assert await ref.ask(Ping(), timeout=10) == Pong()
