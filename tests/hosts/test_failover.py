"""Schedulers on several hosts share one PostgreSQL store; the leader's host fails.

Every process runs on a host of its own (:mod:`tests.hosts.network`): PostgreSQL, two or
three Schedulers, a Pool; the test is the client, on this host. The faults are those of
hosts and links: every process of the leader's host SIGKILLed and its link cut, or the
leader's host cut off the network for longer than its lease and then put back. Each
test records a history and checks I1-I4 once the backlog drained (I6 bounds every
wait); F17 checks I7 across hosts.

Until Pools and clients follow the leader among the Schedulers' addresses themselves,
the test points them at the new leader after a failover (:meth:`HostCluster.repoint`,
a new client connection): a stand-in, marked where it is used.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.hosts.cluster import HostCluster
from tests.jobs.harness import eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


async def _started(cluster: HostCluster, *jobs: str) -> None:
    for job in jobs:
        await eventually(lambda job=job: cluster.history.started(job, 1), f"{job} to start")


async def test_the_leaders_host_killed(hosts: Callable[..., HostCluster]) -> None:
    """(a) Every process of the leading Scheduler's host SIGKILLed and its link down:
    the standby on another host takes over from the store; jobs acknowledged before
    the kill, and jobs submitted after it, all end with one committed result."""
    cluster = hosts()
    await cluster.prepare_store()
    cluster.add_scheduler("s1")
    cluster.add_scheduler("s2")
    cluster.add_pool("pool", "s1")
    cluster.start("s1")
    await cluster.new_leader()
    cluster.start("s2", "pool")
    async with cluster.connected("s1"):
        done = [await cluster.submit(f"a-done-{n}", cluster.step()) for n in range(4)]
        running = [
            await cluster.submit(f"a-run-{n}", cluster.step(seconds=600.0, attempts=[1]))
            for n in range(2)
        ]
        await _started(cluster, *running)
        await eventually(lambda: len(cluster.history.executions()) >= 8, "the short jobs")
        queued = [await cluster.submit(f"a-queued-{n}", cluster.step()) for n in range(3)]
    killed = cluster.roles["s1"].host.kill()
    assert killed, "the leader's host ran nothing"
    leader = await cluster.new_leader("s1")
    assert leader == "s2"
    cluster.repoint("pool", leader)  # stand-in for following the leader
    async with cluster.connected(leader):
        after = [await cluster.submit(f"a-after-{n}", cluster.step()) for n in range(3)]
        history = await cluster.finish()
    final = history.final
    for job in [*done, *running, *queued, *after]:
        assert final[job].status == "succeeded", final[job]
    for job in done:  # committed by the first leader; the second read them from the store
        assert final[job].attempt == 1
        assert len(history.started(job)) == 1
    for job in running:  # their lease ran out with the first leader: attempt 2
        assert final[job].attempt >= 2
