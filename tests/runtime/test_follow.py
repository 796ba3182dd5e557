"""Finding the leader among several addresses: redirects followed, every answer named."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import pytest

from actorwork import ActorSystem
from actorwork.errors import HandshakeError, NoLeader
from actorwork.messages import Ping, Pong
from actorwork.runtime import Actor
from actorwork.runtime.follow import find_leader, resolve_addresses, split_addresses
from actorwork.scheduler.standby import Standby


class Leader(Actor):
    async def receive(self, message: Ping) -> Pong:
        return Pong(message.payload)


def _address() -> str:
    return f"inproc://follow-{uuid.uuid4().hex}"


@asynccontextmanager
async def schedulers(*actors: Actor) -> AsyncIterator[list[str]]:
    """One system per actor, each listening at an address of its own; the addresses."""
    async with AsyncExitStack() as stack:
        addresses = []
        for actor in actors:
            address = _address()
            system = await stack.enter_async_context(ActorSystem("s", listen=address))
            await system.spawn(actor, name="scheduler")
            addresses.append(address)
        yield addresses


def _standby(leader: str | None) -> Standby:
    standby = Standby()
    standby.seen(None if leader is None else f"host:1:t {leader}")
    return standby


async def test_a_standby_sends_the_asker_to_the_leader_it_names() -> None:
    leader = _address()
    async with (
        ActorSystem("s", listen=leader) as system,
        schedulers(_standby(leader), _standby(leader)) as standbys,
        ActorSystem("client") as client,
    ):
        await system.spawn(Leader(), name="scheduler")
        ref = await find_leader(client, standbys, "scheduler", timeout=10)
        assert ref.address == leader


async def test_the_next_address_is_tried_when_a_standby_knows_no_leader() -> None:
    async with schedulers(_standby(None), Leader()) as addresses, ActorSystem("client") as client:
        ref = await find_leader(client, addresses, "scheduler", timeout=10)
        assert ref.address == addresses[1]


async def test_no_leader_names_each_answer_and_says_standbys_answered() -> None:
    gone = _address()
    async with schedulers(_standby(gone)) as (standby,), ActorSystem("client") as client:
        with pytest.raises(NoLeader) as raised:
            await find_leader(client, [standby], "scheduler", timeout=10)
    assert raised.value.standbys
    text = str(raised.value)
    assert f"{standby}: in standby (leader: {gone})" in text
    assert f"{gone}: " in text  # the named leader was tried too
    assert not isinstance(raised.value, HandshakeError)


async def test_unreachable_addresses_only_are_no_leader_without_standbys() -> None:
    async with ActorSystem("client") as client:
        with pytest.raises(NoLeader) as raised:
            await find_leader(client, [_address(), _address()], "scheduler", timeout=10)
    assert not raised.value.standbys


def test_addresses_split_from_a_string_or_a_list() -> None:
    assert split_addresses("tcp://a:1, tcp://b:2,") == ["tcp://a:1", "tcp://b:2"]
    assert split_addresses(["tcp://a:1"]) == ["tcp://a:1"]
    with pytest.raises(ValueError, match="no Scheduler address in ' , '"):
        split_addresses(" , ")


async def test_addresses_other_than_a_name_of_several_are_kept_as_written() -> None:
    # A name resolving to several is tested for real in tests/stores/test_name_resolving.py.
    written = [
        "tcp://127.0.0.1:7400",
        "tcp://[::1]:7400",
        "unix:///run/actorwork/scheduler.sock",
        "inproc://scheduler",
        "tcp://no-port-given",  # the transport's connect names what is wrong
        "tcp://127.0.0.1:7400",
    ]
    assert await resolve_addresses(written) == written[:-1]
