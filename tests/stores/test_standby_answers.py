"""A client given one Scheduler address that answers in standby (``NotLeaderReply``).

Real processes on one SQLite store (the fleet of :mod:`tests.stores.test_leader_following`,
its config cut down to the leader's one address): a Scheduler in standby did nothing
with the ask, so the client asks again, at the leader it names or, while it names
none, at the same address until one leads; out of patience, ``NoLeader`` names the
address. Never an AssertionError on the unexpected reply.
"""

from __future__ import annotations

import re
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from actorwork.client import Client
from actorwork.config import load_config
from actorwork.errors import NoLeader, TransportError
from actorwork.messages import NotLeaderReply, Ping
from actorwork.node import system_from_settings
from actorwork.runtime import RemoteRef
from tests.jobs.test_faults import eventually
from tests.jobs.works import Step
from tests.stores.test_leader_following import Fleet

pytestmark = pytest.mark.slow


async def test_a_client_given_one_scheduler_in_standby_waits_for_or_follows_the_leader(
    tmp_path: Path,
) -> None:
    """A client given only a standby's address: while no leader is named it asks
    again until one leads (or raises NoLeader naming the address once out of
    patience), and when the standby names the leader it follows there."""
    fleet = Fleet(tmp_path, str(tmp_path / "jobs.db"))
    first, second, third = fleet.addresses
    listed = ", ".join(f'"{a}"' for a in fleet.addresses)
    fleet.config.write_text(fleet.config.read_text().replace(f"[{listed}]", f'"{first}"'))
    fleet.start("leader")  # listens at the one address: it advertises none
    config = load_config(fleet.config)
    try:
        async with AsyncExitStack() as stack:
            system = await stack.enter_async_context(
                system_from_settings(config.system, name="test-client")
            )
            await Client(system, first).ping(timeout=60)
            fleet.start("standby", listen=second)  # advertises its listen address

            async def answer(address: str) -> object:
                try:
                    return await (await system.remote(address, "scheduler")).ask(Ping(), timeout=30)
                except TransportError:
                    return None

            assert await eventually(lambda: answer(second), "the standby") == NotLeaderReply()
            impatient = Client(system, second, connect_timeout=0.5)
            with pytest.raises(NoLeader, match=re.escape(repr([second]))):
                await impatient.list()

            patient = await stack.enter_async_context(Client(system, second, connect_timeout=60))
            fleet.kill("leader")  # the standby takes over, and the same call then answers
            assert await patient.list() == []
            assert await patient.ping(timeout=60) >= 0

            fleet.start("late", listen=third)  # in standby, naming the new leader
            reply = await eventually(lambda: answer(third), "the late standby")
            assert reply == NotLeaderReply(leader=second)
            follower = await stack.enter_async_context(Client(system, third))
            handle = await follower.submit("traced", Step(history=str(tmp_path / "h")))
            assert (await follower.get(handle.id)).id == handle.id
            ref = follower._ref
            assert isinstance(ref, RemoteRef)
            assert ref.address == second
    finally:
        fleet.stop_all()
