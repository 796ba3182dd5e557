"""The HTTP API against an inline job system: every endpoint and its errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import msgspec
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Mount

from actorwork.client import Client
from actorwork.schedules import schedule
from actorwork.testing import job_system
from actorwork.testing.jobs import InlineJobs, hosted
from actorwork.web import create_app
from tests.jobs import works

BASE = "http://127.0.0.1:7480"


@pytest.fixture
async def jobs() -> AsyncIterator[InlineJobs]:
    async with hosted(job_system(["tests.jobs.works"])) as system:
        yield system


@pytest.fixture
async def http(jobs: InlineJobs) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(jobs.client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as client:
        yield client


async def test_submit_then_get_a_job_with_its_attempts_and_logs(
    jobs: InlineJobs, http: httpx.AsyncClient
) -> None:
    reply = await http.post("/jobs", json={"work": "echo", "payload": "hello"})
    assert reply.status_code == 201, reply.text
    job_id = reply.json()["job_id"]
    await jobs.run_until_idle()
    reply = await http.get(f"/jobs/{job_id}")
    assert reply.status_code == 200
    body = reply.json()
    assert body["job"]["status"] == "succeeded"
    assert len(body["attempts"]) == 1
    logs = (await http.get(f"/jobs/{job_id}/logs")).json()["logs"]
    assert logs == body["job"]["result"]["logs"]


async def test_jobs_list_filters_by_work_and_time_and_pages_by_cursor(
    jobs: InlineJobs, http: httpx.AsyncClient
) -> None:
    for _ in range(3):
        await jobs.submit(works.noop)
    await jobs.submit(works.add, works.Pair(1, 2))
    await jobs.run_until_idle()
    page = (await http.get("/jobs", params={"work": "noop", "limit": 2})).json()
    assert [j["work"] for j in page["jobs"]] == ["noop", "noop"]
    rest = (await http.get("/jobs", params={"work": "noop", "cursor": page["next"]})).json()
    assert [j["work"] for j in rest["jobs"]] == ["noop"]
    assert rest["next"] is None
    now = jobs.clock.wall().timestamp()
    assert (await http.get("/jobs", params={"since": now + 1})).json()["jobs"] == []
    assert len((await http.get("/jobs", params={"until": now + 1})).json()["jobs"]) == 4


async def test_jobs_list_counts_what_its_filters_match_when_asked(
    jobs: InlineJobs, http: httpx.AsyncClient
) -> None:
    for text in ("a", "b", "c"):
        await jobs.submit(works.refuse)
        await jobs.submit(works.boom, text, retries=0)
    await jobs.submit(works.noop)
    await jobs.run_until_idle()
    reply = await http.get("/jobs", params={"status": "failed", "work": "refuse", "count": "true"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["count"] == 3
    assert [j["work"] for j in body["jobs"]] == ["refuse"] * 3
    small = (await http.get("/jobs", params={"count": "true", "limit": 1})).json()
    assert (small["count"], len(small["jobs"])) == (7, 1)  # the count ignores the page
    assert "count" not in (await http.get("/jobs")).json()  # only when asked
    reply = await http.get("/jobs", params={"count": "yes"})
    assert (reply.status_code, reply.json()["field"]) == (422, "count")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "lost"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"since": "nan"}, "since"),
        ({"queue": "q" * 300}, "queue"),
    ],
)
async def test_a_bad_filter_is_422_naming_the_field(
    http: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    reply = await http.get("/jobs", params=params)
    assert reply.status_code == 422
    assert reply.json()["field"] == field


async def test_a_job_that_does_not_exist_is_404(http: httpx.AsyncClient) -> None:
    for path in ("/jobs/nope", "/jobs/nope/logs", "/jobs/nope/artifacts/a.pdf"):
        reply = await http.get(path)
        assert reply.status_code == 404, path
        assert reply.json() == {
            "error": "no job 'nope' is known to the scheduler",
            "field": "job_id",
            "value": None,
        }
    assert (await http.post("/jobs/nope/cancel")).status_code == 404


async def test_a_submit_of_an_unknown_work_or_bad_body_is_422(http: httpx.AsyncClient) -> None:
    reply = await http.post("/jobs", json={"work": "no-such-work"})
    assert (reply.status_code, reply.json()["field"]) == (422, "work")
    reply = await http.post("/jobs", json={"work": "noop", "priority": "high"})
    assert (reply.status_code, reply.json()["field"]) == (422, "priority")
    reply = await http.post("/jobs", content=b"{not json")
    assert (reply.status_code, reply.json()["field"]) == (422, "body")
    deep = b'{"work": "noop", "payload": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    reply = await http.post("/jobs", content=deep)  # msgspec raises RecursionError
    assert (reply.status_code, reply.json()["field"]) == (422, "body")


async def test_an_artifact_downloads_with_its_media_type(
    jobs: InlineJobs, http: httpx.AsyncClient
) -> None:
    handle = await jobs.submit(works.artifact, "report.txt")
    await jobs.run_until_idle()
    view = await handle.view()
    assert view.result is not None
    artifact = view.result.artifacts[0]
    reply = await http.get(f"/jobs/{handle.id}/artifacts/{artifact.name}")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith(artifact.media_type)
    assert reply.content == artifact.data
    listed = (await http.get(f"/jobs/{handle.id}")).json()["job"]["result"]["artifacts"][0]
    assert listed["data"] == ""  # listed without its bytes


async def test_dead_jobs_are_listed_retried_and_deleted_by_filter(
    jobs: InlineJobs, http: httpx.AsyncClient
) -> None:
    handle = await jobs.submit(works.boom, "x", retries=0)
    await jobs.run_until_idle()
    dead = (await http.get("/dead")).json()["jobs"]
    assert [j["id"] for j in dead] == [handle.id]
    reply = await http.post("/jobs/retry/by-filter", json={"status": "dead"})
    assert reply.json()["done"] == [handle.id]
    await jobs.run_until_idle()
    reply = await http.post("/jobs/delete/by-filter", json={"status": "dead", "work": "boom"})
    assert reply.json()["done"] == [handle.id]
    assert (await http.get(f"/jobs/{handle.id}")).status_code == 404
    reply = await http.post("/jobs/delete/by-filter", json={})
    assert reply.status_code == 422


async def test_cancel_and_delete_one_job(jobs: InlineJobs, http: httpx.AsyncClient) -> None:
    handle = await jobs.submit(works.noop, delay=3600)
    assert (await http.get("/scheduled")).json()["jobs"][0]["id"] == handle.id
    reply = await http.delete(f"/jobs/{handle.id}")
    assert reply.status_code == 409  # live: cancel first
    reply = await http.post(f"/jobs/{handle.id}/cancel")
    assert reply.json()["job"]["status"] == "cancelled"
    assert (await http.delete(f"/jobs/{handle.id}")).status_code == 200
    assert (await http.post(f"/jobs/{handle.id}/explode")).status_code == 404


async def test_a_paused_queue_dispatches_nothing_until_resumed(
    jobs: InlineJobs, http: httpx.AsyncClient
) -> None:
    reply = await http.post("/queues/default/pause")
    assert reply.json()["queue"]["paused"] is True
    handle = await jobs.submit(works.noop)
    queues = {q["name"]: q for q in (await http.get("/queues")).json()["queues"]}
    assert queues["default"]["paused"] is True
    assert queues["default"]["queued"] == 1
    assert "paused" in (await handle.view()).waiting
    await http.post("/queues/default/resume")
    await jobs.run_until_idle()
    assert await handle.status() == "succeeded"


async def test_pools_show_capacity_and_busy_workers(
    jobs: InlineJobs, http: httpx.AsyncClient
) -> None:
    handle = await jobs.submit(works.sleep, 30.0)
    for _ in range(500):
        if await handle.status() == "running":
            break
        await jobs.client.get(handle.id)
    pools = (await http.get("/pools")).json()["pools"]
    assert [p["name"] for p in pools] == ["default"]
    pool = pools[0]
    assert pool["capacity"] >= 1
    assert [b["job_id"] for b in pool["busy"]] == [handle.id]
    assert pool["heartbeat_age"] >= 0
    await handle.cancel()


async def test_schedules_list_disable_enable_and_run_now(
    jobs: InlineJobs, http: httpx.AsyncClient
) -> None:
    await jobs.client.add_schedule(schedule("nightly", works.noop, cron="0 3 * * *"))
    listed = (await http.get("/schedules")).json()["schedules"]
    assert listed[0]["schedule"]["name"] == "nightly"
    assert len(listed[0]["next_fires"]) == 3
    reply = await http.post("/schedules/nightly/disable")
    assert reply.json()["schedule"]["schedule"]["enabled"] is False
    reply = await http.post("/schedules/nightly/run")
    assert reply.status_code == 201
    job_id = reply.json()["job"]["id"]
    await jobs.run_until_idle()
    assert (await jobs.client.get(job_id)).status == "succeeded"
    assert (await http.post("/schedules/nope/run")).status_code == 404
    reply = await http.post("/schedules/nightly/enable")
    assert reply.json()["schedule"]["next_fires"]


async def test_metrics_expose_jobs_queues_pools_and_readings(
    jobs: InlineJobs, http: httpx.AsyncClient
) -> None:
    await jobs.submit(works.noop)
    await jobs.run_until_idle()
    text = (await http.get("/metrics")).text
    assert (
        'actorwork_jobs_finished_total{outcome="succeeded",queue="default",work="noop"} 1.0' in text
    )
    assert 'actorwork_queue_depth{queue="default",status="queued"} 0.0' in text
    assert 'actorwork_pool_workers{pool="default",state="busy"} 0.0' in text
    (commits,) = [
        line for line in text.splitlines() if line.startswith("actorwork_store_commits_total ")
    ]
    assert float(commits.split()[1]) >= 2  # the submit's commit, and the result's
    stats = await jobs.client.stats()
    assert stats.commit_seconds > 0
    assert "actorwork_scheduler_loop_lag_seconds" in text


async def test_each_app_has_its_own_registry(jobs: InlineJobs) -> None:
    one, two = create_app(jobs.client), create_app(jobs.client)
    assert one.state.api.metrics.registry is not two.state.api.metrics.registry


async def test_mounted_under_a_prefix_of_a_parent_app(jobs: InlineJobs) -> None:
    parent = Starlette(routes=[Mount("/ops/actorwork", app=create_app(jobs.client))])
    async with httpx.AsyncClient(transport=httpx.ASGITransport(parent), base_url=BASE) as http:
        reply = await http.post("/ops/actorwork/jobs", json={"work": "noop"})
        assert reply.status_code == 201
        listed = (await http.get("/ops/actorwork/jobs")).json()["jobs"]
        assert [j["id"] for j in listed] == [reply.json()["job_id"]]
        assert (await http.get("/jobs")).status_code == 404


async def test_the_openapi_document_lists_every_path(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    assert {"/jobs", "/jobs/{job_id}", "/queues", "/pools", "/schedules", "/events"} <= set(
        document["paths"]
    )
    assert "JobView" in document["components"]["schemas"]


async def test_events_without_an_event_stream_are_503_naming_it(
    jobs: InlineJobs, http: httpx.AsyncClient
) -> None:
    if hasattr(jobs.client, "events"):
        pytest.skip("this client has Client.events")
    reply = await http.get("/events")
    assert reply.status_code == 503
    assert reply.json()["field"] == "events"


async def test_events_stream_as_server_sent_events(jobs: InlineJobs) -> None:
    """Against the real event stream, at the ASGI level (an SSE response never ends, and
    httpx's in-process transport waits for the whole body): a job cancelled once the
    headers went out is an event on the stream."""
    if not hasattr(jobs.client, "events"):
        pytest.skip("Client.events is not in this branch yet")
    app = create_app(jobs.client)
    handle = await jobs.submit(works.noop, delay=60)
    sent: list[dict[str, Any]] = []
    started = anyio.Event()
    seen = anyio.Event()

    async def receive() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.start":
            started.set()
        elif handle.id.encode() in message.get("body", b""):
            seen.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/events",
        "raw_path": b"/events",
        "query_string": f"job_id={handle.id}".encode(),
        "headers": [(b"host", b"127.0.0.1:7480")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 7480),
    }
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(app, scope, receive, send)
            await started.wait()
            assert sent[0]["status"] == 200
            await handle.cancel()
            await seen.wait()
            tg.cancel_scope.cancel()
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert b"event: job.cancelled" in body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"work": "add", "payload": {"x": 2**70, "y": 1}}, "payload"),
        ({"work": "noop", "queue": ""}, "queue"),
        ({"work": "noop", "delay": 315360001.0}, "delay"),
        ({"work": "noop", "priority": 2**31}, "priority"),
        ({"work": "noop", "timeout": 0}, "timeout"),
        ({"work": "noop", "surprise": 1}, "surprise"),
    ],
)
async def test_a_submit_out_of_bounds_is_422_naming_the_field(
    http: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    reply = await http.post("/jobs", json=body)
    assert reply.status_code == 422, reply.text
    assert reply.json()["field"] == field


async def test_a_whole_float_counts_as_a_whole_number(http: httpx.AsyncClient) -> None:
    reply = await http.post("/jobs", json={"work": "noop", "retries": 2.0})
    assert reply.status_code == 201, reply.text


async def test_a_path_parameter_too_long_for_its_message_is_422(http: httpx.AsyncClient) -> None:
    reply = await http.get("/jobs/" + "x" * 257)
    assert (reply.status_code, reply.json()["field"]) == (422, "job_id")
    reply = await http.post("/schedules/" + "s" * 257 + "/run")
    assert (reply.status_code, reply.json()["field"]) == (422, "name")


async def test_a_method_not_allowed_names_those_that_are(http: httpx.AsyncClient) -> None:
    reply = await http.put("/jobs")
    assert reply.status_code == 405
    assert set(reply.headers["allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    assert reply.json()["field"] == "path"


async def test_a_whole_float_in_a_payload_fills_an_int_field(
    jobs: InlineJobs, http: httpx.AsyncClient
) -> None:
    reply = await http.post("/jobs", json={"work": "add", "payload": {"x": 2.0, "y": 3}})
    assert reply.status_code == 201, reply.text
    assert await jobs.client.result(reply.json()["job_id"], timeout=30) == 5


class _Progressed(msgspec.Struct, tag="job.progressed", tag_field="type"):
    job_id: str
    fraction: float


class _EventsClient:
    """The client with an event stream of the agreed shape, until Client.events lands."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self.asked: dict[str, Any] = {}
        self.closed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def events(self, **filters: Any) -> AsyncIterator[_Progressed]:
        if "nope" in filters.get("kinds", ()):
            raise ValueError("unknown event kind 'nope'")
        self.asked = filters
        return self._stream()

    async def _stream(self) -> AsyncIterator[_Progressed]:
        try:
            yield _Progressed("j1", 0.5)
            yield _Progressed("j1", 1.0)
        finally:
            self.closed = True


async def test_events_go_out_as_server_sent_events_with_their_filters(jobs: InlineJobs) -> None:
    client = _EventsClient(jobs.client)
    app = create_app(client)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as http:
        reply = await http.get("/events", params={"job_id": "j1", "kinds": "job.progressed"})
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert reply.text == (
        'event: job.progressed\ndata: {"type":"job.progressed","job_id":"j1","fraction":0.5}\n\n'
        'event: job.progressed\ndata: {"type":"job.progressed","job_id":"j1","fraction":1.0}\n\n'
    )
    assert client.asked == {
        "job_id": "j1",
        "work": None,
        "queue": None,
        "status": None,
        "kinds": ["job.progressed"],
    }


async def test_a_stream_left_early_unsubscribes_at_once(jobs: InlineJobs) -> None:
    client = _EventsClient(jobs.client)
    app = create_app(client)  # type: ignore[arg-type]
    scope = {"type": "http", "method": "GET", "query_string": b"", "headers": [], "app": app}
    response = await app.state.api.events(Request(scope))
    body = response.body_iterator
    assert (await body.__anext__()).startswith(b"event: job.progressed")
    assert not client.closed
    await body.aclose()  # what Starlette does when the browser goes away
    assert client.closed


async def test_an_unknown_event_kind_is_422(jobs: InlineJobs) -> None:
    app = create_app(_EventsClient(jobs.client))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as http:
        reply = await http.get("/events", params={"kinds": "nope"})
    assert (reply.status_code, reply.json()["field"]) == (422, "kinds")
