"""Schedulers on several hosts share one PostgreSQL store; the leader's host fails.

Every process runs on a host of its own (:mod:`tests.hosts.network`): PostgreSQL, two or
three Schedulers, a Pool; the test is the client, on this host. The faults are those of
hosts and links: every process of the leader's host SIGKILLed and its link cut, or the
leader's host cut off the network for longer than its lease and then put back. Each
test records a history and checks I1-I4 once the backlog drained (I6 bounds every
wait); F17 checks I7 across hosts.

Every Pool and client is given every Scheduler's address and follows the leader.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from actorwork.scheduler.cron_state import parse_unique_key
from tests.hosts.cluster import HostCluster
from tests.jobs.harness import eventually, fired_jobs

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


async def _two_schedulers_and_a_pool(hosts: Callable[..., HostCluster]) -> HostCluster:
    """Two Schedulers (``s1`` leads) and a Pool, each on a host of its own, started."""
    cluster = hosts()
    await cluster.prepare_store()
    cluster.add_scheduler("s1")
    cluster.add_scheduler("s2")
    cluster.add_pool("pool")
    cluster.start("s1")
    assert await cluster.new_leader() == "s1"
    cluster.start("s2", "pool")
    return cluster


async def _leader_with_work(cluster: HostCluster) -> tuple[list[str], list[str]]:
    """Four jobs done, and two running on the Pool until the file ``gate`` in the
    cluster's directory appears: the ids of the done and the running."""
    done = [await cluster.submit(f"done-{n}", cluster.step()) for n in range(4)]
    running = [
        await cluster.submit(f"run-{n}", cluster.step(attempts=[], gate=str(cluster.tmp / "gate")))
        for n in range(2)
    ]
    for job in running:
        await eventually(lambda job=job: cluster.history.started(job, 1), f"{job} to start")
    await eventually(lambda: len(cluster.history.executions()) >= 8, "the short jobs")
    return done, running


async def test_the_leaders_host_killed(hosts: Callable[..., HostCluster]) -> None:
    """(a) The leading Scheduler's host unplugged and every process on it SIGKILLed:
    the standby on another host takes over from the store, and the Pool, given both
    addresses, follows it with the jobs it runs; jobs acknowledged before the kill, and
    jobs submitted after it, all end with one committed result."""
    cluster = await _two_schedulers_and_a_pool(hosts)
    async with cluster.connected():
        done, running = await _leader_with_work(cluster)
        queued = [await cluster.submit(f"queued-{n}", cluster.step()) for n in range(3)]
    killed = cluster.roles["s1"].host.kill()
    assert killed, "the leader's host ran nothing"
    assert await cluster.new_leader("s1") == "s2"
    async with cluster.connected():
        after = [await cluster.submit(f"after-{n}", cluster.step()) for n in range(3)]
        (cluster.tmp / "gate").touch()
        history = await cluster.finish()
    final = history.final
    for job in [*done, *running, *queued, *after]:
        assert final[job].status == "succeeded", final[job]
    for job in done:  # committed by the first leader; the second read them from the store
        assert final[job].attempt == 1
        assert len(history.started(job)) == 1
    assert cluster.log("pool").count("scheduler_connected") >= 2  # it followed


async def test_a_client_connected_across_the_leaders_host_dying_follows(
    hosts: Callable[..., HostCluster],
) -> None:
    """A client kept across the leader's host dying: its connection gets no FIN and
    goes silent, the next submit finds the leader silent past the link's liveness
    timeout (the probe unanswered), and is asked again of the new leader."""
    cluster = await _two_schedulers_and_a_pool(hosts)
    async with cluster.connected():
        before = await cluster.submit("before", cluster.step())
        await eventually(lambda: cluster.history.started(before), "the first job")
        cluster.roles["s1"].host.kill()
        assert await cluster.new_leader("s1") == "s2"
        after = await cluster.submit("after", cluster.step())
        history = await cluster.finish()
    assert history.final[after].status == "succeeded"


async def test_the_leaders_host_partitioned_then_healed(
    hosts: Callable[..., HostCluster],
) -> None:
    """(b) The leading Scheduler's host cut off from PostgreSQL and from the Pool for
    longer than its lease: the standby takes over and the Pool follows it; put back,
    the old leader finds its epoch over, stands down (exit 3) and writes nothing from
    the moment it was cut off."""
    cluster = await _two_schedulers_and_a_pool(hosts)
    old = cluster.roles["s1"].host
    async with cluster.connected():
        done, running = await _leader_with_work(cluster)
        _, epoch = cluster.leader_row()
        cut = cluster.database_now()
        old.unplug()
    assert cluster.writes_since("-infinity", host=old), "the audit saw no write of the leader"
    assert await cluster.new_leader("s1") == "s2"
    assert cluster.leader_row()[1] == epoch + 1
    async with cluster.connected():  # a new client: the first one's link is cut, not closed
        after = [await cluster.submit(f"after-{n}", cluster.step()) for n in range(3)]
        await eventually(lambda: cluster.history.started(after[-1]), "a job of the new leader")
        (cluster.tmp / "gate").touch()
        old.plug()
        # It stood down by itself: its lease ran out unrenewed, or it found it taken over.
        assert await cluster.exited("s1") == 3
        assert re.search(r"scheduler_(deposed|stepped_down)", cluster.log("s1"))
        history = await cluster.finish()
    assert cluster.writes_since(cut, host=old) == []  # nothing from its host once cut off
    assert [w for w in cluster.writes_since(cut) if w.endswith(f" {epoch}")] == []
    final = history.final
    for job in [*done, *running, *after]:
        assert final[job].status == "succeeded", final[job]
    for job in done:
        assert final[job].attempt == 1


F17_SCHEDULE = """
[schedules.tick]
work = "note_run"
cron = "* * * * * *"
missed = "run_all"
payload = "{runs}"
"""


async def test_f17_three_schedulers_on_three_hosts_the_leaders_host_killed(
    hosts: Callable[..., HostCluster], tmp_path: Path
) -> None:
    """(e) F17 across hosts: one cron schedule, three Schedulers each on its own host,
    the leader's host killed: exactly one job per fire time (I7), none skipped
    (``run_all`` catches up the times missed during the failover)."""
    runs = tmp_path / "runs"
    cluster = hosts(schedules=F17_SCHEDULE.format(runs=runs))
    await cluster.prepare_store()
    for name in ("s1", "s2", "s3"):
        cluster.add_scheduler(name)
    cluster.start("s1")
    first = await cluster.new_leader()
    cluster.start("s2", "s3")
    cluster.add_pool("pool")
    cluster.start("pool")

    def executed() -> set[str]:
        return set(runs.read_text().split()) if runs.exists() else set()

    await eventually(lambda: len(executed()) >= 3, "three firings run")
    cluster.roles[first].host.kill()
    killed_at = len(executed())
    await cluster.new_leader(first)
    await eventually(lambda: len(executed()) >= killed_at + 3, "firings after the takeover")
    for name in cluster.roles:
        await cluster.stop(name)
    rows = cluster.pg.psql("SELECT id FROM jobs WHERE id LIKE 'cron:%'", cluster.database)
    stored = rows.split()
    fired = fired_jobs([cluster.roles[name].log for name in ("s1", "s2", "s3")])
    assert len(fired) == len(set(fired)), f"a fire time fired twice: {sorted(fired)}"
    assert set(stored) == set(fired)  # one job each, all stored (I7)
    times = sorted(parse_unique_key(job_id)[1] for job_id in stored)  # type: ignore[index]
    gaps = {b - a for a, b in itertools.pairwise(times)}
    assert gaps == {timedelta(seconds=1)}, f"fire times skipped: {times}"
    assert executed() <= set(stored)
