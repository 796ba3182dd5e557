"""Faults of the PostgreSQL host and of a Pool's host, each process on a host of its own.

PostgreSQL stopped as a crash would stop it (``pg_ctl stop -m immediate``) and started
again on the same data directory and port while jobs are submitted and finished; a
Pool's host cut off the network while its jobs finish, then put back. Each test records
a history and checks I1-I4 once the backlog drained (see :mod:`tests.hosts.cluster`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from actorwork.errors import ActorworkError
from actorwork.stores.postgresql import PostgreSQLStore
from tests.hosts.cluster import HostCluster
from tests.jobs.harness import DEADLINE, eventually, in_outbox, outbox_entries

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


async def test_a_leader_whose_host_dies_mid_write_is_taken_over(
    hosts: Callable[..., HostCluster], tmp_path: Path
) -> None:
    """A leader's host dies between two statements of a write: the server ends its
    session (``DEAD_PEER_SETTINGS``), so the row lock it held goes and a standby takes
    over; without that the standby's ``FOR UPDATE`` would wait for TCP to give up."""
    cluster = hosts()
    await cluster.prepare_store()
    host, ready = cluster.net.host(), tmp_path / "ready"
    url = cluster.pg.host_url(cluster.database, password=True)
    cluster.run("dying", host, ["-m", "tests.hosts.dying_leader", url, str(ready)])
    await eventually(ready.exists, "the leader inside its write")
    host.kill()
    standby = PostgreSQLStore(url)
    await standby.open()
    try:

        async def takeover() -> int | None:
            now = time.monotonic()
            return await standby.acquire("standby:2:y", now + 2.0, now, "boot")

        with anyio.fail_after(DEADLINE):
            assert await eventually(takeover, "the standby to take over") == 2
    finally:
        await standby.aclose()


async def test_postgresql_restarted_under_load(hosts: Callable[..., HostCluster]) -> None:
    """(c) The database crashes and comes back while a client submits and a Pool
    finishes jobs: the Scheduler retries its commits (within its leader lease) and
    carries on; every acknowledged job ends once, nothing acknowledged is lost (I5)."""
    # A leader lease far past a loaded machine's restart of PostgreSQL: the Scheduler
    # rides the outage out rather than stepping down.
    cluster = hosts(leader_lease=20.0)
    await cluster.prepare_store()
    cluster.add_scheduler("s1")
    cluster.add_pool("pool", size=4)
    cluster.start("s1", "pool")
    await cluster.new_leader()
    restarted = anyio.Event()
    async with cluster.connected():

        async def load() -> None:
            n = 0
            while not restarted.is_set() or n < 40:
                n += 1
                try:
                    await cluster.submit(f"c-{n}", cluster.step(seconds=0.1))
                except ActorworkError:  # refused during the outage: not acknowledged
                    pass

        async with anyio.create_task_group() as tg:
            tg.start_soon(load)
            await eventually(lambda: len(cluster.history.executions()) >= 10, "jobs running")
            cluster.pg.halt("immediate")
            await eventually(lambda: "store_commit_failed" in cluster.log("s1"), "a commit to fail")
            cluster.pg.resume()
            restarted.set()
        history = await cluster.finish()
    assert cluster.roles["s1"].proc is not None
    assert cluster.roles["s1"].proc.returncode == 0, "the Scheduler stepped down"
    acknowledged = [job for job, ok in history.submits.items() if ok]
    assert len(acknowledged) >= 40
    for job in acknowledged:
        assert history.final[job].status == "succeeded", history.final[job]


async def test_a_pools_host_partitioned_then_healed(
    hosts: Callable[..., HostCluster], tmp_path: Path
) -> None:
    """(d) A Pool's host cut off while its jobs finish: the results wait in its outbox,
    and once the host is back they are delivered, each once; no job runs twice (the
    jobs' lease outlasts the partition)."""
    cluster = hosts(lease=30.0)
    gate = tmp_path / "gate"
    await cluster.prepare_store()
    cluster.add_scheduler("s1")
    pool = cluster.add_pool("pool", size=4)
    cluster.start("s1", "pool")
    await cluster.new_leader()
    async with cluster.connected():
        jobs = [
            await cluster.submit(f"d-{n}", cluster.step(attempts=[], gate=str(gate)))
            for n in range(4)
        ]
        for job in jobs:
            await eventually(lambda job=job: cluster.history.started(job, 1), f"{job} to start")
        pool.host.unplug()
        gate.touch()
        outbox = cluster.outbox("pool")
        await eventually(lambda: in_outbox(outbox, *jobs), "the results in the outbox")
        await eventually(
            lambda: "scheduler_unreachable" in cluster.log("pool"), "the Pool to miss it"
        )
        assert [await cluster.client.attempts(job) for job in jobs] == [[]] * len(jobs)  # type: ignore[union-attr]
        pool.host.plug()
        history = await cluster.finish()
    for job in jobs:
        assert (history.final[job].status, history.final[job].attempt) == ("succeeded", 1)
        assert len(history.started(job)) == 1
        assert len(history.recorded[job]) == 1  # delivered once
    assert outbox_entries(cluster.outbox("pool")) == {}
