"""A workflow seen from outside: its nodes' events carry the workflow and the path."""

from __future__ import annotations

from actorwork.events import EVENT_KINDS, JobSucceeded
from actorwork.testing import job_system
from tests.workflows import flows

MODULES = ("tests.workflows.flows",)


async def test_node_events_carry_the_workflow_and_the_path() -> None:
    async with job_system(MODULES) as jobs:
        other = await jobs.submit(flows.value, 1)  # a job of no workflow: filtered out
        async with jobs.client.events(workflow="wf-seen") as events:
            flow = await jobs.client.submit_workflow(flows.chain, workflow_id="wf-seen")
            seen = []
            async for event in events:
                seen.append(event)
                if isinstance(event, JobSucceeded) and event.path == "chain.third":
                    break
        await other.result()
    assert flow == "wf-seen"
    assert {event.workflow for event in seen} == {"wf-seen"}
    succeeded = [e.path for e in seen if isinstance(e, JobSucceeded)]
    assert succeeded == ["chain.first", "chain.second", "chain.third"]
    kinds = {EVENT_KINDS[type(e)] for e in seen if e.path == "chain.second"}
    assert kinds >= {"job.submitted", "job.started", "job.succeeded"}
    assert all(e.job_id == f"wf-seen:{e.path}" for e in seen if e.path)
