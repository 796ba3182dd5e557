"""actorwork.js in real headless Chromium, against a live inline job system and the API
served by uvicorn: a page watches a job that moves only when the test says so, and
sees its progress and log lines while it runs; the server restarts on the same port
while the job ends, and the page's watch resumes and still tells the end."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route

from actorwork.testing import job_system
from actorwork.testing.jobs import InlineJobs
from actorwork.testing.web import chromium_page, served
from actorwork.web import Security, create_app
from tests.web import ws_works

PAGE = """<!doctype html>
<title>watching</title>
<script type="module">
import * as actorwork from "/actorwork/static/actorwork.js";
window.actorwork = actorwork;
const id = new URLSearchParams(location.search).get("job");
if (id) actorwork.watchJob(id, {
  base: "/actorwork",
  progress: (fraction, message) => window.report({ kind: "progress", fraction, message }),
  log: (line, event) => window.report({ kind: "log", line, live: event !== null }),
  done: (status, job) => window.report({ kind: "done", status, job: job.status }),
});
</script>
"""


class Reports:
    """What the page reported through ``window.report``, and a way to wait for one."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self._changed = anyio.Event()

    def add(self, report: dict[str, Any]) -> None:
        self.seen.append(report)
        self._changed.set()

    async def until(self, found: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        with anyio.fail_after(30):
            while True:
                for report in self.seen:
                    if found(report):
                        return report
                self._changed = anyio.Event()
                await self._changed.wait()


def site(jobs: InlineJobs, security: Security | None = None) -> Starlette:
    """A user's own app: its page at /, the API mounted at /actorwork."""

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE)

    return Starlette(
        routes=[
            Route("/", page),
            Mount("/actorwork", app=create_app(jobs.client, security=security)),
        ]
    )


@asynccontextmanager
async def page_reporting() -> AsyncIterator[tuple[Any, Reports]]:
    """A Chromium page whose ``window.report(...)`` lands in the Reports."""
    reports = Reports()
    async with chromium_page() as page:
        await page.exposeFunction("report", reports.add)
        yield page, reports


def progress(fraction: float) -> Callable[[dict[str, Any]], bool]:
    return lambda report: report["kind"] == "progress" and report["fraction"] == fraction


async def test_the_page_sees_progress_and_logs_while_the_job_runs_then_done(
    local_chromium: str,
) -> None:
    ws_works.GATES.clear()
    async with (
        job_system(["tests.web.ws_works"]) as jobs,
        served(site(jobs)) as base,
        page_reporting() as (page, reports),
    ):
        handle = await jobs.submit(ws_works.steps, ws_works.Steps("p", 2))
        await page.goto(f"{base}/?job={handle.id}")
        await reports.until(progress(0.0))  # the page watches
        ws_works.gate("p/1").set()
        assert await reports.until(progress(0.5)) == {
            "kind": "progress",
            "fraction": 0.5,
            "message": "step 1",
        }
        line = await reports.until(lambda r: r["kind"] == "log")
        assert line == {"kind": "log", "line": "step 1 of 2", "live": True}
        assert await handle.status() == "running"  # both seen before the job ended
        ws_works.gate("p/2").set()
        done = await reports.until(lambda r: r["kind"] == "done")
    assert done == {"kind": "done", "status": "succeeded", "job": "succeeded"}
    assert [r for r in reports.seen if r["kind"] == "done"] == [done]  # once
    assert [r["fraction"] for r in reports.seen if r["kind"] == "progress"] == [0.0, 0.5, 1.0]
    logs = [(r["line"], r["live"]) for r in reports.seen if r["kind"] == "log"]
    assert logs == [("step 1 of 2", True), ("step 2 of 2", True)]


async def test_the_watch_resumes_after_the_server_restarts_and_done_still_fires(
    local_chromium: str,
) -> None:
    ws_works.GATES.clear()
    async with job_system(["tests.web.ws_works"]) as jobs, page_reporting() as (page, reports):
        app = site(jobs)
        handle = await jobs.submit(ws_works.steps, ws_works.Steps("r", 2))
        async with served(app) as base:
            await page.goto(f"{base}/?job={handle.id}")
            await reports.until(progress(0.0))
            ws_works.gate("r/1").set()
            await reports.until(progress(0.5))
            await reports.until(lambda r: r["kind"] == "log")
        # The server stopped, closing the page's socket; the job ends meanwhile.
        ws_works.gate("r/2").set()
        assert (await handle.wait(timeout=30)).status == "succeeded"
        async with served(app, port=int(base.rsplit(":", 1)[1])):
            done = await reports.until(lambda r: r["kind"] == "done")
    assert done == {"kind": "done", "status": "succeeded", "job": "succeeded"}
    # What happened while the page was away came from the job, read again.
    assert [r["fraction"] for r in reports.seen if r["kind"] == "progress"] == [0.0, 0.5, 1.0]
    logs = [(r["line"], r["live"]) for r in reports.seen if r["kind"] == "log"]
    assert logs == [("step 1 of 2", True), ("step 2 of 2", False)]


WATCH = """() => new Promise((subscribed) => window.actorwork.watch(
  { kinds: ["job.succeeded"] },
  (event) => window.report({ kind: "event", type: event.type, job: event.job_id }),
  { base: "/actorwork", onSubscribed: subscribed },
))"""

SUBMIT = """(work, payload) => window.actorwork.submit(work, payload, { base: "/actorwork" })
  .then(({ id }) => ({ id }), (error) => ({ error: error.message, field: error.field }))"""


async def test_watch_and_submit_from_a_page(local_chromium: str) -> None:
    async with (
        job_system(["tests.jobs.works"]) as jobs,
        served(site(jobs)) as base,
        page_reporting() as (page, reports),
    ):
        await page.goto(f"{base}/")
        await page.waitForFunction("window.actorwork !== undefined")
        await page.evaluate(WATCH)  # resolves once the server confirmed the subscription
        submitted = await page.evaluate(SUBMIT, "noop", None)
        event = await reports.until(lambda r: r["kind"] == "event")
        assert event == {"kind": "event", "type": "job.succeeded", "job": submitted["id"]}
        assert (await jobs.client.get(submitted["id"])).status == "succeeded"
        refused = await page.evaluate(SUBMIT, "no-such-work", None)
    assert refused["field"] == "work"
    assert "no-such-work" in refused["error"]


WITH_TOKEN = """async (token) => {
  const options = { base: "/actorwork", token };
  const { id } = await window.actorwork.submit("noop", null, options);
  const { status } = await window.actorwork.watchJob(id, options).done;
  return status;
}"""


async def test_with_a_token_the_page_submits_and_watches_with_it(local_chromium: str) -> None:
    token = "k" * 24
    async with (
        job_system(["tests.jobs.works"]) as jobs,
        served(site(jobs, Security(token=token))) as base,
        page_reporting() as (page, _),
    ):
        await page.goto(f"{base}/")
        await page.waitForFunction("window.actorwork !== undefined")
        assert await page.evaluate(WITH_TOKEN, token) == "succeeded"
