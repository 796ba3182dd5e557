"""Failure policies, cancel and retry of workflows on an inline job system."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from actorwork.cli.jobs import format_workflow
from actorwork.client import Client
from actorwork.config import load_config
from actorwork.errors import WorkNotFound
from actorwork.testing import job_system
from actorwork.workflow import WorkflowView
from tests.workflows import flows

MODULES = ("tests.workflows.flows",)


def statuses(tree: WorkflowView) -> dict[str, str]:
    return {node.path: node.status for node in tree.nodes}


async def until_status(client: Client, flow: str, path: str, wanted: str) -> WorkflowView:
    """The tree once node ``path`` is ``wanted`` (waits on the job, no timing guess)."""
    while True:
        tree = await client.workflow(flow)
        if statuses(tree).get(path) == wanted:
            return tree
        await anyio.sleep(0.01)


async def test_stop_ends_the_rest_of_the_workflow_at_the_first_failure(tmp_path: Path) -> None:
    gates = flows.Gates(release=str(tmp_path / "release"))
    async with job_system(MODULES) as jobs:
        flow = await jobs.client.submit_workflow(flows.slow_and_bad, gates, policy="stop")
        await until_status(jobs.client, flow, "slow_and_bad.branches.bad", "failed")
        await jobs.run_until_idle()
        tree = await jobs.client.workflow(flow)
    assert tree.status == "failed"
    assert tree.policy == "stop"
    got = statuses(tree)
    assert got["slow_and_bad.branches.slow.wait"] == "cancelled"
    assert got["slow_and_bad.branches.slow.after"] == "skipped"
    assert got["slow_and_bad.total"] == "skipped"
    after = next(n for n in tree.nodes if n.path == "slow_and_bad.branches.slow.after")
    assert "stopped: node 'slow_and_bad.branches.bad' ended failed" in after.error
    shown = format_workflow(tree).splitlines()
    assert shown[0] == f"workflow {flow}  slow_and_bad  failed  (on failure: stop)"
    [bad] = [line for line in shown if line.strip().startswith("slow_and_bad.branches.bad ")]
    assert bad.startswith("    slow_and_bad.branches.bad")  # indented under its group
    status, took, attempts = bad.split()[1:4]
    assert (status, attempts) == ("failed", "attempts=1")
    assert took.endswith("s")
    assert "is missing" in bad  # its error


async def test_finish_runs_what_does_not_depend_on_the_failed_node(tmp_path: Path) -> None:
    gates = flows.Gates(release=str(tmp_path / "release"))
    async with job_system(MODULES) as jobs:
        flow = await jobs.client.submit_workflow(flows.slow_and_bad, gates, policy="finish")
        await until_status(jobs.client, flow, "slow_and_bad.branches.bad", "failed")
        await anyio.Path(gates.release).touch()
        await jobs.run_until_idle()
        tree = await jobs.client.workflow(flow)
    assert tree.status == "failed"
    got = statuses(tree)
    assert got["slow_and_bad.branches.slow.wait"] == "succeeded"
    assert got["slow_and_bad.branches.slow.after"] == "succeeded"
    assert got["slow_and_bad.branches"] == "skipped"
    assert got["slow_and_bad.total"] == "skipped"


async def test_cancel_cancels_the_pending_and_running_nodes(tmp_path: Path) -> None:
    gates = flows.Gates(release=str(tmp_path / "release"), fix=str(tmp_path))
    async with job_system(MODULES) as jobs:
        flow = await jobs.client.submit_workflow(flows.slow_and_bad, gates)
        await until_status(jobs.client, flow, "slow_and_bad.branches.slow.wait", "running")
        await until_status(jobs.client, flow, "slow_and_bad.branches.bad", "succeeded")
        cancelled = await jobs.client.cancel_workflow(flow)
        await jobs.run_until_idle()
        tree = await jobs.client.workflow(flow)
    assert {n.status for n in cancelled.nodes} <= {"succeeded", "cancelled", "skipped"}
    assert tree.status == "cancelled"
    got = statuses(tree)
    assert got["slow_and_bad.branches.bad"] == "succeeded"  # it had ended: left as it was
    assert got["slow_and_bad.branches.slow.wait"] == "cancelled"
    assert got["slow_and_bad.branches.slow.after"] in ("cancelled", "skipped")
    assert got["slow_and_bad.total"] in ("cancelled", "skipped")
    after = next(n for n in tree.nodes if n.path == "slow_and_bad.branches.slow.after")
    assert after.attempts == 0  # it never ran


async def test_retry_runs_again_only_the_failed_and_skipped_nodes(tmp_path: Path) -> None:
    fix = tmp_path / "fixed"
    gates = flows.Gates(release=str(tmp_path), fix=str(fix))  # the slow branch goes at once
    async with job_system(MODULES) as jobs:
        flow = await jobs.client.submit_workflow(flows.slow_and_bad, gates, policy="finish")
        await jobs.run_until_idle()
        before = await jobs.client.workflow(flow)
        assert before.status == "failed"
        assert statuses(before)["slow_and_bad.total"] == "skipped"
        await anyio.Path(fix).touch()
        await jobs.client.retry_workflow(flow)
        await jobs.run_until_idle()
        after = await jobs.client.workflow(flow)
    assert after.status == "succeeded"
    old = {n.path: n for n in before.nodes}
    new = {n.path: n for n in after.nodes}
    assert new["slow_and_bad.branches.bad"].attempts == 2
    assert new["slow_and_bad.branches"].result == {"bad": 1, "slow": 7}
    assert (new["slow_and_bad.total"].status, new["slow_and_bad.total"].result) == ("succeeded", 8)
    for path in ("slow_and_bad.branches.slow.wait", "slow_and_bad.branches.slow.after"):
        assert new[path].attempts == 1, path  # succeeded before: not run again
        assert new[path].started == old[path].started, path


async def test_a_skipped_job_retried_waits_for_its_parents_again(tmp_path: Path) -> None:
    fix = tmp_path / "fixed"
    async with job_system(MODULES) as jobs:
        parent = await jobs.submit(flows.flaky, str(fix))
        child = await jobs.submit(flows.value, 1, depends_on=[parent])
        await jobs.run_until_idle()
        assert await child.status() == "skipped"
        again = await jobs.client.retry(child.id)  # its parent still failed: skipped again
        assert again.status == "skipped"
        assert again.error.startswith(f"parent {parent.id!r} ended failed")
        await anyio.Path(fix).touch()
        await jobs.client.retry(parent.id)
        waiting = await jobs.client.retry(child.id)
        assert waiting.status == "waiting"
        await jobs.run_until_idle()
        assert await child.result() == 2  # 1 + the parent's 1
        assert (await child.view()).attempt == 1


async def test_a_step_of_unknown_work_is_refused_naming_its_node() -> None:
    async with job_system(MODULES) as jobs:
        with pytest.raises(WorkNotFound, match=r"workflow node 'ghost.step': unknown work"):
            await jobs.client.submit_workflow(flows.ghost)


async def test_the_nodes_a_workflow_adds_go_to_the_queue_it_names(tmp_path: Path) -> None:
    """The expanders and gathering nodes go to the queue named at the submit (and run on
    the pool that serves it); the steps to their works' queue."""
    path = tmp_path / "actorwork.toml"
    path.write_text('[pools.steps]\nqueues = ["default"]\n[pools.flows]\nqueues = ["flows"]\n')
    async with job_system(MODULES, config=load_config(path, env={})) as jobs:
        flow = await jobs.client.submit_workflow(flows.fan, flows.Plan(items=3), queue="flows")
        await jobs.run_until_idle()
        tree = await jobs.client.workflow(flow)
        views = {n.path: await jobs.client.get(n.job_id) for n in tree.nodes}
    assert tree.status == "succeeded"
    assert views["fan.squares.each"].queue == "flows"
    assert views["fan.squares"].queue == "flows"
    assert views["fan.squares.each"].result.pool == "flows"  # type: ignore[union-attr]
    assert views["fan.squares[1]"].queue == "default"
    assert views["fan.squares[1]"].result.pool == "steps"  # type: ignore[union-attr]
