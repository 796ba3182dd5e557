"""A workflow survives its Scheduler's SIGKILL: the graph of its nodes, the nodes its
expander added and the gathering node waiting for them are durable, so a restarted
Scheduler resumes it where it was. Processes, signals and the history are those of
:mod:`tests.jobs.test_faults`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from tests.jobs.test_faults import Cluster, cluster_factory, eventually
from tests.workflows import flows

__all__ = ["cluster_factory"]

pytestmark = pytest.mark.slow

ITEMS = 6


def with_flows(cluster: Cluster) -> Cluster:
    text = cluster.config.read_text()
    modules = 'modules = ["tests.jobs.works", "tests.workflows.flows"]'
    cluster.config.write_text(text.replace('modules = ["tests.jobs.works"]', modules))
    return cluster


async def test_scheduler_sigkill_mid_workflow_resumes_it(
    cluster_factory: Callable[..., Cluster],
) -> None:
    cluster = with_flows(cluster_factory(size=2))
    history = str(cluster.history.path)
    cluster.start("scheduler")
    cluster.start("pool")
    async with cluster.connected() as client:
        flow = await client.submit_workflow(flows.durable, flows.Slow(history=history, n=ITEMS))
        # Kill it once the expander added the fan-out's children and the first runs.
        first = f"{flow}:durable.squares.0"
        await eventually(lambda: cluster.history.started(first), "the fan-out to start")
        cluster.kill("scheduler")
    cluster.start("scheduler")  # the same store
    async with cluster.connected() as client:

        async def ended() -> object:
            tree = await client.workflow(flow)
            return tree if tree.status != "running" else None

        tree = await eventually(ended, "the workflow to end")
    cluster.kill("pool")
    cluster.kill("scheduler")
    nodes = {node.path: node for node in tree.nodes}
    assert tree.status == "succeeded", [(n.path, n.status, n.error) for n in tree.nodes]
    squares = [f"durable.squares[{i}]" for i in range(ITEMS)]
    assert [p for p in nodes if p.startswith("durable.squares[")] == squares
    assert len(tree.nodes) == len(nodes)  # no node twice
    assert nodes["durable.squares"].result == [i * i for i in range(ITEMS)]
    assert nodes["durable.total"].result == sum(i * i for i in range(ITEMS))
    assert nodes["durable.check.then"].result == 1000 + nodes["durable.total"].result
    assert nodes["durable.last"].status == "succeeded"
    # Every child ran to its end at least once, none was lost; a run cut by the kill may
    # repeat (at least once), but each committed exactly one result.
    ends = Counter(e.job_id for e in cluster.history.executions() if e.event == "end")
    assert {nodes[p].job_id for p in squares} <= set(ends)
    assert all(nodes[p].attempts >= 1 for p in squares)
