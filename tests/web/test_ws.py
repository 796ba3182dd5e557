"""``/ws`` over a real socket (uvicorn on loopback, a real WebSocket client): events as
JSON frames while a job runs, filters, hostile frames answered without closing, a
foreign Origin refused on the upgrade, and a socket that does not read told it lost
events while the Scheduler keeps serving."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx
import msgspec
import pytest
import websockets
import websockets.exceptions
from starlette.applications import Starlette
from starlette.routing import Mount

from actorwork import events as ev
from actorwork.messages import LogLine
from actorwork.testing import job_system
from actorwork.testing.jobs import InlineJobs
from actorwork.testing.web import served
from actorwork.web import Security, create_app
from actorwork.web.security import decide_upgrade
from actorwork.web.ws import (
    BUFFER,
    BUFFER_BYTES,
    FRAME_BYTES,
    MAX_FRAME,
    MAX_SUBSCRIPTIONS,
    _Held,
    _Subscription,
    parse_filter,
)
from tests.jobs import works
from tests.web import ws_works

MODULES = ["tests.jobs.works", "tests.web.ws_works"]
TOKEN = "t" * 20
READ_TOKEN = "r" * 20


@asynccontextmanager
async def api(security: Security | None = None) -> AsyncIterator[tuple[InlineJobs, str]]:
    """An inline job system and its API on loopback: ``(jobs, "ws://127.0.0.1:PORT")``."""
    ws_works.GATES.clear()
    async with job_system(MODULES) as jobs, served(create_app(jobs.client, security=security)) as b:
        yield jobs, b.replace("http://", "ws://")


async def frame(socket_: Any) -> dict[str, Any]:
    with anyio.fail_after(20):
        data: dict[str, Any] = json.loads(await socket_.recv())
        return data


async def until(socket_: Any, kind: str, **fields: Any) -> list[dict[str, Any]]:
    """The events of ``events`` frames up to the first of type ``kind`` with ``fields``."""
    seen: list[dict[str, Any]] = []
    while True:
        got = await frame(socket_)
        assert got["op"] == "events", got
        for event in got["events"]:
            seen.append(event)
            if event["type"] == kind and all(event[k] == v for k, v in fields.items()):
                return seen


async def subscribe(socket_: Any, sub: str, **filter: Any) -> None:
    await socket_.send(json.dumps({"op": "subscribe", "sub": sub, "filter": filter}))
    assert await frame(socket_) == {"op": "subscribed", "sub": sub}


async def test_a_running_jobs_progress_and_logs_arrive_as_frames_before_it_ends() -> None:
    async with api() as (jobs, base), websockets.connect(f"{base}/ws") as ws:
        await subscribe(ws, "mine", work="ws.steps")
        handle = await jobs.submit(ws_works.steps, ws_works.Steps("a", 2))
        ws_works.gate("a/1").set()
        seen = await until(ws, "job.progress", fraction=0.5)
        assert await handle.status() == "running"  # seen while the job still runs
        logged = [e for e in seen if e["type"] == "job.log"]
        assert [line[3] for e in logged for line in e["lines"]] == ["step 1 of 2"]
        assert seen[-1]["message"] == "step 1"
        ws_works.gate("a/2").set()
        seen += await until(ws, "job.succeeded", job_id=handle.id)
    assert {e["job_id"] for e in seen} == {handle.id}
    kinds = [e["type"] for e in seen]
    assert kinds.index("job.submitted") < kinds.index("job.started") < kinds.index("job.log")
    assert [e["seq"] for e in seen] == sorted(e["seq"] for e in seen)


async def test_filters_by_statuses_and_kinds_and_unsubscribe_stops_the_frames() -> None:
    async with api() as (jobs, base), websockets.connect(f"{base}/ws") as ws:
        await subscribe(ws, "ends", status=["succeeded", "failed"])
        await subscribe(ws, "starts", kinds=["job.started"])
        handle = await jobs.submit(ws_works.steps, ws_works.Steps("b", 0))
        await handle.wait(timeout=20)
        got: dict[str, list[str]] = {"ends": [], "starts": []}
        while not (got["ends"] and got["starts"]):
            received = await frame(ws)
            got[received["sub"]] += [e["type"] for e in received["events"]]
        assert got == {"ends": ["job.succeeded"], "starts": ["job.started"]}

        await ws.send(json.dumps({"op": "unsubscribe", "sub": "starts"}))
        await (await jobs.submit(ws_works.steps, ws_works.Steps("c", 0))).wait(timeout=20)
        received = await frame(ws)
        assert received["sub"] == "ends"  # "starts" is gone: the next frame is the other's
        await ws.send(json.dumps({"op": "ping"}))
        assert await frame(ws) == {"op": "pong"}


def _subscribe(filter: object) -> str:
    return json.dumps({"op": "subscribe", "sub": "s", "filter": filter})


HOSTILE = [
    ("not json {", "frame", "not json {"),
    (json.dumps([1, 2]), "frame", "[1, 2]"),
    (json.dumps({"op": "launch"}), "op", "launch"),
    (json.dumps({"op": "subscribe"}), "sub", None),
    (_subscribe({"kinds": ["job.bogus"]}), "filter.kinds", "job.bogus"),
    (_subscribe({"status": "running"}), "filter.status", "running"),
    (_subscribe({"status": ["lost"]}), "filter.status", "lost"),
    (_subscribe({"job_id": 7}), "filter.job_id", 7),
    (_subscribe({"owner": "x"}), "filter", "owner"),
    (_subscribe("all"), "filter", "all"),
    (json.dumps({"op": "unsubscribe", "sub": "never"}), "sub", "never"),
    ("[" * 5000 + "]" * 5000, "frame", "[" * 80),
    ("x" * (MAX_FRAME + 1), "frame", MAX_FRAME + 1),
    ("y" * 4_000_000, "frame", 4_000_000),
    (b"\x00\xff binary", "frame", 9),
]


HOSTILE_IDS = [
    "not-json",
    "not-an-object",
    "unknown-op",
    "no-sub",
    "unknown-kind",
    "status-not-a-list",
    "unknown-status",
    "job-id-not-a-string",
    "unknown-filter-field",
    "filter-not-an-object",
    "unknown-sub",
    "deep-nesting",
    "over-max-frame",
    "4-mb",
    "binary",
]


async def test_a_workflow_filter_passes_only_that_workflows_node_events() -> None:
    async with api() as (jobs, base), websockets.connect(f"{base}/ws") as ws:
        await subscribe(ws, "flow", workflow="wf-watched")
        other = await jobs.submit(ws_works.steps, ws_works.Steps("alone", 0))
        await other.wait(timeout=20)
        await jobs.client.submit_workflow(ws_works.pair, workflow_id="wf-other")
        await jobs.client.submit_workflow(ws_works.pair, workflow_id="wf-watched")
        seen = await until(ws, "job.succeeded", path="pair.second")
    assert {e["workflow"] for e in seen} == {"wf-watched"}
    assert {e["path"] for e in seen} == {"pair.first", "pair.second"}


@pytest.mark.parametrize(("sent", "field", "value"), HOSTILE, ids=HOSTILE_IDS)
async def test_a_hostile_frame_is_answered_with_an_error_naming_it_and_the_socket_stays_open(
    sent: str | bytes, field: str, value: Any
) -> None:
    async with api() as (jobs, base), websockets.connect(f"{base}/ws", max_size=None) as ws:
        await ws.send(sent)
        error = await frame(ws)
        assert error["op"] == "error", error
        assert (error["field"], error["value"]) == (field, value), error
        assert error["error"]
        # Still open, and still serving: a good subscription after the bad frame works.
        await ws.send(json.dumps({"op": "ping"}))
        assert await frame(ws) == {"op": "pong"}
        await subscribe(ws, "after", kinds=["job.succeeded"])
        handle = await jobs.submit(ws_works.steps, ws_works.Steps("d", 0))
        assert (await until(ws, "job.succeeded"))[-1]["job_id"] == handle.id


async def test_an_error_names_the_subscription_and_a_duplicate_is_refused() -> None:
    async with api() as (_, base), websockets.connect(f"{base}/ws") as ws:
        await subscribe(ws, "one")
        await ws.send(json.dumps({"op": "subscribe", "sub": "one"}))
        error = await frame(ws)
        assert (error["op"], error["sub"], error["field"], error["value"]) == (
            "error",
            "one",
            "sub",
            "one",
        )


async def test_a_foreign_origin_is_refused_on_the_upgrade_and_the_own_one_allowed() -> None:
    async with api() as (_, base):
        with pytest.raises(websockets.exceptions.InvalidStatusCode) as refused:
            async with websockets.connect(f"{base}/ws", origin="http://evil.example"):
                pass
        assert refused.value.status_code == 403
        own = base.replace("ws://", "http://")
        async with websockets.connect(f"{base}/ws", origin=own) as ws:  # type: ignore[arg-type]
            await ws.send(json.dumps({"op": "ping"}))
            assert await frame(ws) == {"op": "pong"}


async def test_with_a_token_the_upgrade_needs_it_in_the_query_or_the_header() -> None:
    security = Security(token=TOKEN, read_token=READ_TOKEN)
    async with api(security) as (_, base):
        for url, headers in [
            (f"{base}/ws", {}),
            (f"{base}/ws?token=wrong-token-wrong-token", {}),
            (f"{base}/ws", {"Authorization": "Bearer wrong-token-wrong-token"}),
        ]:
            with pytest.raises(websockets.exceptions.InvalidStatusCode) as refused:
                async with websockets.connect(url, extra_headers=headers):
                    pass
            assert refused.value.status_code == 403, url
        for url, headers in [
            (f"{base}/ws?token={TOKEN}", {}),
            (f"{base}/ws?token={READ_TOKEN}", {}),  # a read-only token may subscribe
            (f"{base}/ws", {"Authorization": f"Bearer {TOKEN}"}),
        ]:
            async with websockets.connect(url, extra_headers=headers) as ws:
                await subscribe(ws, "s")
        # A page imports the module before it can send a token; the data stays guarded.
        async with httpx.AsyncClient(base_url=base.replace("ws://", "http://")) as http:
            assert (await http.get("/static/actorwork.js")).status_code == 200
            assert (await http.get("/jobs")).status_code == 401
            assert (await http.get("/static/../jobs")).status_code == 401


async def test_the_socket_is_served_under_the_prefix_the_api_is_mounted_at() -> None:
    ws_works.GATES.clear()
    async with job_system(MODULES) as jobs:
        parent = Starlette(routes=[Mount("/actorwork", app=create_app(jobs.client))])
        async with (
            served(parent) as base,
            websockets.connect(base.replace("http", "ws") + "/actorwork/ws") as ws,
        ):
            await subscribe(ws, "s")
            async with httpx.AsyncClient(base_url=base) as http:
                script = await http.get("/actorwork/static/actorwork.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "export function watchJob" in script.text


@pytest.mark.timeout(600)  # thousands of jobs on a slow machine
async def test_a_socket_that_does_not_read_is_told_it_lost_events_and_the_scheduler_goes_on() -> (
    None
):
    ws_works.GATES.clear()
    loud_count, lines, width, jobs_count = 10, 50, 2000, 1800
    async with (
        job_system(MODULES) as jobs,
        served(create_app(jobs.client), send_buffer=16_384) as base,
        jobs.client.events(buffer=1_000_000) as counted,
    ):
        # A small receive window and queue: the client stops reading from the kernel
        # as soon as one frame waits unread.
        sock = socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        async with websockets.connect(
            base.replace("http", "ws") + "/ws", sock=sock, max_queue=1, read_limit=1024
        ) as ws:
            await subscribe(ws, "all")
            # Many small jobs for the count of events, a few loud ones for their bytes.
            handles = [
                await jobs.submit(ws_works.loud, ws_works.Loud(lines, width))
                for _ in range(loud_count)
            ]
            handles += [await jobs.submit(works.noop) for _ in range(jobs_count)]
            for handle in handles:  # all done while the socket reads nothing
                assert (await handle.wait(timeout=60)).status == "succeeded"
            async with httpx.AsyncClient(base_url=base) as http:  # the API still answers
                assert (await http.get(f"/jobs/{handles[-1].id}")).status_code == 200
            flowed, remaining = 0, {handle.id for handle in handles}
            with anyio.fail_after(30):
                async for event in counted:
                    flowed += getattr(event, "count", 1)
                    if event.status == "succeeded":
                        remaining.discard(event.job_id)
                    if not remaining:
                        break
            assert flowed >= 10_000
            assert flowed > BUFFER * 2

            lost, received = 0, 0
            with anyio.fail_after(60):
                while not lost:
                    got = await frame(ws)
                    if got["op"] == "lost":
                        assert got["sub"] == "all"
                        lost = got["count"]
                    else:
                        received += len(got["events"])
            assert lost > 0


def test_the_upgrade_rules_check_the_host_always_and_the_origin_when_given() -> None:
    rules = Security()
    own = {"host": "127.0.0.1:8000"}
    assert decide_upgrade(rules, own) is None
    assert decide_upgrade(rules, {**own, "origin": "http://127.0.0.1:8000"}) is None
    refused = decide_upgrade(rules, {"host": "evil.example"})
    assert refused is not None
    assert (refused.status, refused.field, refused.value) == (403, "host", "evil.example")
    refused = decide_upgrade(rules, {**own, "origin": "http://127.0.0.1:9999"})
    assert refused is not None
    assert (refused.field, refused.value) == ("origin", "http://127.0.0.1:9999")
    allowed = Security(allowed_origins=("https://admin.example.org",))
    assert decide_upgrade(allowed, {**own, "origin": "https://admin.example.org"}) is None


async def test_a_socket_holds_a_bounded_number_of_subscriptions() -> None:
    async with api() as (_, base), websockets.connect(f"{base}/ws") as ws:
        for index in range(MAX_SUBSCRIPTIONS):
            await subscribe(ws, f"s{index}", kinds=["job.succeeded"])
        await ws.send(json.dumps({"op": "subscribe", "sub": "one-more"}))
        error = await frame(ws)
        assert (error["op"], error["field"], error["value"]) == ("error", "sub", "one-more")
        await ws.send(json.dumps({"op": "unsubscribe", "sub": "s0"}))
        await subscribe(ws, "one-more")  # room again


async def test_a_client_that_sends_without_reading_is_closed_not_buffered() -> None:
    async with api() as (_, base):
        sock = socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sent = 0
        async with websockets.connect(f"{base}/ws", sock=sock, max_queue=1) as ws:
            with anyio.fail_after(60):
                try:
                    while sent < 100_000:  # far more answers than the buffers hold
                        await ws.send('{"op": "ping"}')
                        sent += 1
                except websockets.exceptions.ConnectionClosed:
                    pass
                answered = await pongs_until_closed(ws)
        assert answered < sent


async def pongs_until_closed(socket_: Any) -> int:
    """How many pongs ``socket_`` reads before the server closes it."""
    answered = 0
    try:
        while True:
            assert await frame(socket_) == {"op": "pong"}
            answered += 1
    except websockets.exceptions.ConnectionClosed:
        return answered


async def test_the_subscriptions_of_a_socket_share_one_bound_of_bytes() -> None:
    held = _Held()
    everything = parse_filter(None)
    first, second = _Subscription("a", everything, held), _Subscription("b", everything, held)
    line = LogLine(0.0, "log", "info", "x" * 10_000)
    big = ev.JobLogged(job_id="j", lines=[line] * 100)  # about 1 MB encoded
    size = len(msgspec.json.encode(big))
    while held.size + size <= BUFFER_BYTES:
        first.add(big)
    assert first.lost == 0
    second.add(big)  # the socket is full: the other subscription has no room either
    assert (second.lost, len(second.pending)) == (1, 0)
    first.close()  # what the first held is the socket's to hold again
    assert held.size == 0
    second.add(big)
    assert (len(second.pending), held.size) == (1, second.size)
    frames = second.frames()
    assert held.size == 0
    assert all(len(frame) <= FRAME_BYTES or frame.count(b'"type"') == 1 for frame in frames)
