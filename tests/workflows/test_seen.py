"""A workflow seen and steered from outside: its nodes' events carry the workflow and
the path; the API shows, cancels and retries it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest

from actorwork import SyncClient
from actorwork.config import load_config
from actorwork.events import EVENT_KINDS, JobSucceeded
from actorwork.testing import job_system
from actorwork.testing.jobs import InlineJobs, hosted
from actorwork.web import create_app
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


@pytest.fixture
async def jobs() -> AsyncIterator[InlineJobs]:
    async with hosted(job_system(MODULES)) as system:
        yield system


@pytest.fixture
async def http(jobs: InlineJobs) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(jobs.client)
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:7480") as client:
        yield client


async def test_the_api_shows_cancels_and_retries_a_workflow(
    jobs: InlineJobs, http: httpx.AsyncClient, tmp_path: Path
) -> None:
    fix = tmp_path / "fixed"
    gates = flows.Gates(release=str(tmp_path / "release"), fix=str(fix))
    flow = await jobs.client.submit_workflow(flows.slow_and_bad, gates, policy="finish")
    shown = await http.get(f"/workflows/{flow}")
    assert shown.status_code == 200, shown.text
    tree = shown.json()["workflow"]
    assert tree["id"] == flow
    assert tree["status"] == "running"
    paths = {node["path"] for node in tree["nodes"]}
    assert "slow_and_bad.branches.slow.wait" in paths
    cancelled = await http.post(f"/workflows/{flow}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["workflow"]["status"] in ("cancelled", "failed")
    await jobs.run_until_idle()
    await anyio.Path(fix).touch()
    await anyio.Path(gates.release).touch()
    retried = await http.post(f"/workflows/{flow}/retry")
    assert retried.status_code == 200, retried.text
    await jobs.run_until_idle()
    final = (await http.get(f"/workflows/{flow}")).json()["workflow"]
    assert final["status"] == "succeeded", final
    by_path = {node["path"]: node for node in final["nodes"]}
    assert by_path["slow_and_bad.total"]["result"] == 8
    assert (await http.get("/workflows/wf-nope")).status_code == 404
    assert (await http.post(f"/workflows/{flow}/pause")).status_code == 404
    spec = (await http.get("/openapi.json")).json()
    assert set(spec["paths"]["/workflows/{workflow_id}/{action}"]) == {"post"}
    assert "WorkflowView" in spec["components"]["schemas"]
    submit = json.dumps(spec["paths"]["/jobs"]["post"])
    assert "wf_value" in submit  # the works a submit lists: the user's,
    assert "actorwork.workflow." not in submit  # not a workflow's own nodes


def test_the_sync_client_submits_a_workflow_and_shows_its_tree(tmp_path: Path) -> None:
    path = tmp_path / "actorwork.toml"
    path.write_text(
        f'[jobs]\nmodules = ["tests.workflows.flows"]\n[scheduler]\n'
        f'address = "inproc://sync-wf-{tmp_path.name}"\nstore = "{tmp_path}/jobs.db"\n'
        f'[pools.main]\noutbox = "{tmp_path}/outbox"\n'
    )
    with SyncClient(load_config(path, env={})) as client:
        flow = client.submit_workflow(flows.chain, workflow_id="wf-sync")
        third = client.result(f"{flow}:chain.third", timeout=60)
        tree = client.workflow(flow)
    assert third == 111
    assert (tree.id, tree.status) == ("wf-sync", "succeeded")
