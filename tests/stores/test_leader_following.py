"""Three Schedulers on one store, each listening at an address of its own; a Pool and a
client given all three addresses follow the one that leads.

Every role is a real process (``python -m actorwork scheduler`` three times, ``... pool``
once) over TCP on 127.0.0.1; the test process is the client. The leader is SIGKILLed
with jobs running: the jobs submitted before and after the kill all complete, each with
one committed result (I1-I4 checked over the recorded history), and the Pool and the
client reach the Scheduler that took over. On PostgreSQL, and on SQLite (three
Schedulers on one file of one host).
"""

from __future__ import annotations

from contextlib import AsyncExitStack

import pytest

from actorwork.client import Client
from actorwork.config import load_config
from actorwork.errors import TransportError
from actorwork.messages import NotLeaderReply, Ping
from actorwork.node import system_from_settings
from actorwork.runtime import RemoteRef
from actorwork.stores import open_store
from actorwork.testing.stores import TemporaryPostgres
from tests.jobs.history import History, Recorded
from tests.jobs.test_faults import eventually
from tests.jobs.works import Step
from tests.stores.fleet import Fleet, leader_holder

pytestmark = pytest.mark.slow


async def test_pool_and_client_follow_the_leader_when_it_is_killed(
    fleet: tuple[Fleet, tuple[TemporaryPostgres | None, str]],
) -> None:
    cluster, (server, database) = fleet
    history = History(cluster.tmp / "history")
    cluster.start_all()
    config = load_config(cluster.config)
    async with AsyncExitStack() as stack:
        system = await stack.enter_async_context(
            system_from_settings(config.system, name="test-client")
        )
        client = await stack.enter_async_context(Client(system, config.scheduler.address))
        await client.ping(timeout=60)

        async def submit(job_id: str) -> None:
            history.submitted(job_id, acknowledged=False)
            step = Step(history=str(history.path), seconds=0.3)
            handle = await client.submit("traced", step, job_id=job_id)
            history.submitted(handle.id, acknowledged=True)

        for n in range(12):
            await submit(f"before-{n}")
        await eventually(lambda: len(history.executions()) >= 2, "jobs running")
        first = cluster.leader(server, database)
        holder = leader_holder(cluster, server, database)

        # Standbys answer with where the leader is, once they listen: on a loaded
        # machine a standby's process may still be starting when the leader serves.
        standby = next(a for a in cluster.addresses if not holder.endswith(a))

        async def standby_answer() -> object:
            try:
                return await (await system.remote(standby, "scheduler")).ask(Ping(), timeout=30)
            except TransportError:
                return None

        reply = await eventually(standby_answer, f"the standby at {standby} to listen")
        assert reply == NotLeaderReply(leader=cluster.addresses[int(first[-1])])

        cluster.kill(first)
        for n in range(12):
            await submit(f"after-{n}")
        final = {job_id: await client.wait(job_id, timeout=120) for job_id in history.submits}
        history.final = final

        second = cluster.leader(server, database)
        assert second != first
        ref = client._ref  # the client followed the new leader
        assert isinstance(ref, RemoteRef)
        assert ref.address == cluster.addresses[int(second[-1])]
        pool_log = cluster.log("pool")
        assert pool_log.count("scheduler_connected") >= 2, pool_log
    cluster.stop_all()

    assert {view.status for view in final.values()} == {"succeeded"}
    store = open_store(cluster.store if server is None else server.url(database))
    await store.open()
    try:
        for job_id in history.submits:
            history.recorded[job_id] = [Recorded(*row) for row in await store.attempts(job_id)]
    finally:
        await store.aclose()
    history.check()
