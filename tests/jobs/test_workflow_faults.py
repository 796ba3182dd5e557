"""Dependencies and limits under real faults: a Scheduler SIGKILLed while a graph runs,
and a Pool paused past its lease while it holds a limit's only slot.

Processes, signals and the history are those of :mod:`tests.jobs.test_faults`.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import anyio
import msgspec
import pytest

from tests.jobs.harness import eventually
from tests.jobs.test_faults import Cluster, cluster_factory
from tests.jobs.works_workflows import KeyedStep, Node

__all__ = ["cluster_factory"]

pytestmark = pytest.mark.slow

MODULES = 'modules = ["tests.jobs.works", "tests.jobs.works_workflows"]'


def with_workflow_works(cluster: Cluster) -> Cluster:
    text = cluster.config.read_text()
    cluster.config.write_text(text.replace('modules = ["tests.jobs.works"]', MODULES))
    return cluster


#: The graph: node -> (parents, when, fails). Roots r0 and r1 succeed, r2 fails.
GRAPH: dict[str, tuple[tuple[str, ...], str, bool]] = {
    "r0": ((), "succeeded", False),
    "r1": ((), "succeeded", False),
    "r2": ((), "succeeded", True),
    "a": (("r0", "r1"), "succeeded", False),  # runs
    "b": (("r0", "r2"), "succeeded", False),  # skipped: r2 failed
    "c": (("r2",), "failed", False),  # runs: r2 failed
    "d": (("r0",), "failed", False),  # skipped: r0 succeeded
    "e": (("a", "c"), "succeeded", True),  # runs, fails
    "f": (("b",), "succeeded", False),  # skipped, transitively
    "g": (("b", "e"), "finished", False),  # runs whatever they did
    "h": (("e",), "succeeded", False),  # skipped: e failed
    "i": (("g", "h"), "finished", False),  # runs
}


def satisfied(when: str, statuses: list[str]) -> bool:
    if when == "succeeded":
        return all(s == "succeeded" for s in statuses)
    if when == "failed":
        return all(s in ("failed", "dead") for s in statuses)
    return True


async def test_scheduler_sigkill_mid_graph_resumes_it(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    cluster = with_workflow_works(cluster_factory(size=2))
    history = str(cluster.history.path)
    cluster.start("scheduler")
    cluster.start("pool")
    async with cluster.connected() as client:
        for name, (parents, when, fails) in GRAPH.items():
            node = Node(history=history, value=len(name), fail=fails, seconds=0.3)
            cluster.history.submitted(name, acknowledged=False)
            await client.submit(
                "graph_node", node, job_id=name, depends_on=list(parents), when=when
            )  # type: ignore[arg-type]
            cluster.history.submitted(name, acknowledged=True)
        # Kill it while the graph is half way: the second level has started.
        await eventually(lambda: cluster.history.started("a", 1), "node a to start")
        cluster.kill("scheduler")
    cluster.start("scheduler")  # the same store
    async with cluster.connected():
        final = await cluster.drained()
    for role in ("pool", "scheduler"):
        cluster.signal(role, signal.SIGTERM)
        await cluster.exited(role)
    collected = await cluster.collect()
    collected.check()
    ran = {e.job_id for e in collected.executions()}
    seen: dict[str, dict[str, int | None]] = {}
    for line in (await anyio.Path(f"{history}.parents").read_text()).splitlines():
        job_id, parents_seen = json.loads(line)
        seen[job_id] = parents_seen
    for name, (parents, when, fails) in GRAPH.items():
        view = final[name]
        statuses = [final[p].status for p in parents]
        if satisfied(when, statuses):
            assert name in ran, (name, view)
            assert view.status == ("failed" if fails else "succeeded"), (name, view)
            assert set(seen[name]) == set(parents)
            for parent in parents:
                result = final[parent].result
                expected = (
                    msgspec.msgpack.decode(result.value)
                    if final[parent].status == "succeeded" and result and result.value
                    else None
                )
                assert seen[name][parent] == expected, (name, parent, seen[name])
        else:
            assert name not in ran, f"{name} ran though its parents were {statuses}"
            assert view.status == "skipped", (name, view)
            assert "ended" in view.error


async def test_a_paused_pools_slot_under_a_limit_is_freed_when_its_lease_ends(
    cluster_factory: Callable[..., Cluster], tmp_path: Path
) -> None:
    cluster = with_workflow_works(cluster_factory(size=2, lease=2.0))
    gate = tmp_path / "gate"
    history = str(cluster.history.path)
    cluster.start("scheduler")
    cluster.start("pool")
    async with cluster.connected() as client:
        ids = []
        for n in range(2):
            step = KeyedStep(history=history, customer="acme", attempts=[], gate=str(gate))
            cluster.history.submitted(f"k{n}", acknowledged=False)
            handle = await client.submit("keyed_traced", step, job_id=f"k{n}")
            cluster.history.submitted(handle.id, acknowledged=True)
            ids.append(handle.id)
        await eventually(lambda: cluster.history.started("k0", 1), "k0 to start")
        held = await client.get("k1")
        assert held.status == "queued"
        assert held.waiting == "held by limit \"keyed_traced[customer='acme']\": 1 of 1 running"
        # The Pool stops answering: its slot stays taken only until k0's lease ends.
        cluster.signal("pool", signal.SIGSTOP, group=True)

        async def k1_dispatched() -> bool:
            return (await client.get("k1")).status == "running"

        await eventually(k1_dispatched, "k1 to be dispatched once k0's lease ended")
        k0 = await client.get("k0")
        assert k0.status in ("retrying", "queued"), k0
        assert "lease expired" in k0.error
        cluster.signal("pool", signal.SIGCONT, group=True)
        gate.touch()
        history_ = await cluster.finish()
    assert history_.final["k1"].status == "succeeded"
    assert history_.final["k0"].status == "succeeded"
