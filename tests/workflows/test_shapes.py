"""Workflow trees on an inline job system: each shape runs its nodes in order, with the
values they pass on, and the tree shows every node with its path and status."""

from __future__ import annotations

from actorwork.cli.jobs import format_job
from actorwork.testing import job_system
from tests.workflows import flows

MODULES = ("tests.workflows.flows",)


def by_path(view: object) -> dict[str, tuple[str, object]]:
    return {node.path: (node.status, node.result) for node in view.nodes}  # type: ignore[attr-defined]


async def test_a_sequence_runs_its_steps_in_order_each_reading_the_one_before() -> None:
    async with job_system(MODULES) as jobs:
        flow = await jobs.client.submit_workflow(flows.chain)
        await jobs.run_until_idle()
        tree = await jobs.client.workflow(flow)
        shown = format_job(await jobs.client.get(f"{flow}:chain.second"))
    assert f"  node     chain.second of workflow {flow}" in shown
    assert tree.status == "succeeded"
    assert tree.name == "chain"
    assert by_path(tree) == {
        "chain.first": ("succeeded", 1),
        "chain.second": ("succeeded", 11),
        "chain.third": ("succeeded", 111),
    }
    first = tree.nodes[0]
    assert first.job_id == f"{flow}:chain.first"
    assert first.attempts == 1
    assert first.started is not None
    assert first.seconds is not None


async def test_a_parallel_group_gathers_its_childrens_values_for_the_next_step() -> None:
    async with job_system(MODULES) as jobs:
        flow = await jobs.client.submit_workflow(flows.gather_named)
        await jobs.run_until_idle()
        tree = await jobs.client.workflow(flow)
    assert by_path(tree) == {
        "gather_named.start": ("succeeded", 0),
        "gather_named.parts.a": ("succeeded", 1),
        "gather_named.parts.b": ("succeeded", 2),
        "gather_named.parts.c": ("succeeded", 3),
        "gather_named.parts": ("succeeded", {"a": 1, "b": 2, "c": 3}),
        "gather_named.total": ("succeeded", 6),
    }


async def test_a_condition_that_holds_runs_its_branch_and_passes_its_input_on() -> None:
    async with job_system(MODULES) as jobs:
        flow = await jobs.client.submit_workflow(flows.gate, 3)
        await jobs.run_until_idle()
        tree = await jobs.client.workflow(flow)
    nodes = by_path(tree)
    assert nodes["gate.check.then"] == ("succeeded", 1003)
    assert nodes["gate.check.otherwise"] == ("skipped", None)  # shown, never run
    assert nodes["gate.check"] == ("succeeded", 3)
    assert nodes["gate.after"] == ("succeeded", 8)
    assert tree.status == "succeeded"


async def test_a_condition_that_fails_runs_the_other_branch_or_none() -> None:
    async with job_system(MODULES) as jobs:
        other = await jobs.client.submit_workflow(flows.gate, -2)
        none = await jobs.client.submit_workflow(flows.gate_without_else, 0)
        await jobs.run_until_idle()
        tree = await jobs.client.workflow(other)
        bare = await jobs.client.workflow(none)
        # A retry leaves the branch not taken alone: the workflow succeeded.
        again = await jobs.client.retry_workflow(other)
        await jobs.run_until_idle()
    nodes = by_path(tree)
    assert nodes["gate.check.otherwise"] == ("succeeded", -1002)
    assert nodes["gate.check.then"] == ("skipped", None)
    assert nodes["gate.after"] == ("succeeded", 3)
    assert tree.status == "succeeded"
    not_taken = next(n for n in tree.nodes if n.path == "gate.check.then")
    assert not_taken.error == "branch not taken: wf_positive returned False"
    assert not_taken.attempts == 0
    assert [(n.path, n.status) for n in again.nodes] == [(n.path, n.status) for n in tree.nodes]
    assert [(node.path, node.status) for node in bare.nodes] == [
        ("gate_without_else.start", "succeeded"),
        ("gate_without_else.check", "succeeded"),
        ("gate_without_else.check.check", "succeeded"),
        ("gate_without_else.check.then", "skipped"),
    ]
    assert bare.status == "succeeded"


async def test_fan_out_from_data_runs_one_child_per_item() -> None:
    async with job_system(MODULES) as jobs:
        many = await jobs.client.submit_workflow(flows.fan, flows.Plan(items=25))
        await jobs.run_until_idle()
        tree = await jobs.client.workflow(many)
        # A child waits for nothing: it is added once the expander succeeded, and is not
        # handed the expander's whole expansion as a parent's value.
        child = await jobs.client.get(f"{many}:fan.squares.7")
        assert child.depends_on == ()
    nodes = by_path(tree)
    children = [path for path in nodes if path.startswith("fan.squares[")]
    assert children == [f"fan.squares[{i}]" for i in range(25)]
    assert nodes["fan.squares[7]"] == ("succeeded", 49)
    assert nodes["fan.squares"] == ("succeeded", [i * i for i in range(25)])
    assert nodes["fan.total"] == ("succeeded", sum(i * i for i in range(25)))


async def test_fan_out_over_an_empty_list_runs_no_child_and_goes_on() -> None:
    async with job_system(MODULES) as jobs:
        empty = await jobs.client.submit_workflow(flows.fan, flows.Plan(items=0))
        await jobs.run_until_idle()
        tree = await jobs.client.workflow(empty)
    nodes = by_path(tree)
    assert not [path for path in nodes if path.startswith("fan.squares[")]
    assert nodes["fan.squares"] == ("succeeded", [])
    assert nodes["fan.total"] == ("succeeded", 0)
    assert tree.status == "succeeded"
