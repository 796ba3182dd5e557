"""Live progress in a browser: ``ctx.progress()`` in a worker to the DOM change in Chromium.

    python bench/browser.py [--quick] [--markdown]

An inline job system and its API served by uvicorn on loopback; headless Chromium
opens a page that submits each job and watches it with ``actorwork.js`` (``watchJob``),
writing each progress into the DOM and noting the wall time just after. The work
``bench.progress`` reports progress every 60 ms (so none waits for a worker's batch),
each report stamped with the worker's wall time; both ends are on this host. The
baseline, of the same reports in the same run: the time to a subscriber of the Python
client (``client.events``). The target is a p50 of at most 50 ms to the DOM. A
benchmark, not a test: it prints a table and asserts nothing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route

sys.path.insert(0, str(Path(__file__).resolve().parent))

import events_works  # noqa: F401 - registers bench.progress
from _table import host_line, percentile, quick_main

from actorwork import events as ev
from actorwork.client import Client
from actorwork.testing import job_system
from actorwork.testing.web import chromium_page, served
from actorwork.web import create_app

PAGE = """<!doctype html>
<p id="progress"></p>
<script type="module">
import { submit, watchJob } from "/actorwork/static/actorwork.js";
const out = document.getElementById("progress");
// Submits a job of `reports` progress reports; resolves with [job id, [[stamp, ms]...]].
window.measure = async (reports) => {
  const { id } = await submit("bench.progress", reports, { base: "/actorwork" });
  const delays = [];
  return new Promise((resolve) => watchJob(id, {
    base: "/actorwork",
    progress: (fraction, message, event) => {
      if (event === null) return;  // read from the job, not live
      out.textContent = `${Math.round(fraction * 100)}%`;
      delays.push([message, performance.timeOrigin + performance.now() - 1000 * Number(message)]);
    },
    done: () => resolve([id, delays]),
  }));
};
</script>
"""


async def measure(client: Client, jobs: int, reports: int) -> tuple[list[float], list[float]]:
    """Milliseconds from ``ctx.progress()`` to the DOM, and to a Python subscriber, for
    the reports both saw live."""

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE)

    app = Starlette(routes=[Route("/", page), Mount("/actorwork", app=create_app(client))])
    subscriber: dict[str, float] = {}
    to_dom: dict[str, float] = {}
    async with (
        served(app) as base,
        chromium_page() as browser,
        client.events(kinds=["job.progress"]) as stream,
        anyio.create_task_group() as group,
    ):

        async def listen() -> None:
            async for event in stream:
                if isinstance(event, ev.JobProgress):
                    subscriber[event.message] = (time.time() - float(event.message)) * 1000

        group.start_soon(listen)
        await browser.goto(f"{base}/")
        await browser.waitForFunction("typeof window.measure === 'function'")
        for _ in range(jobs):
            _, delays = await browser.evaluate("(n) => window.measure(n)", reports)
            to_dom.update((stamp, delay) for stamp, delay in delays)
        group.cancel_scope.cancel()
    both = sorted(set(subscriber) & set(to_dom))
    return [to_dom[s] for s in both], [subscriber[s] for s in both]


async def run(quick: bool) -> list[list[str]]:
    jobs, reports = (3, 10) if quick else (20, 20)
    async with job_system(["events_works"]) as system:
        await measure(system.client, 1, 5)  # warm up: the page, the socket, the store
        dom, python = await measure(system.client, jobs, reports)
    p50 = {name: percentile(delays, 0.5) for name, delays in (("dom", dom), ("py", python))}
    met = "yes" if p50["dom"] <= 50 else "NO"
    return [
        ["inline", "progress -> Python subscriber (baseline)", *times(python), "-", "-"],
        ["inline", "progress -> DOM in Chromium", *times(dom), "p50 <= 50", met],
        ["inline", "DOM minus baseline", f"{p50['dom'] - p50['py']:.1f}", "", "-", "-"],
        ["inline", "reports measured", f"{len(dom)}", "", "-", "-"],
    ]


def times(delays: list[float]) -> list[str]:
    return [f"{percentile(delays, q):.1f}" for q in (0.5, 0.99)]


def main(argv: list[str] | None = None) -> int:
    columns = ["topology", "measure", "p50 ms", "p99 ms", "target", "met"]
    description = __doc__.splitlines()[0]
    return quick_main(argv, description, run, columns, numeric={2, 3}, notes=[host_line()])


if __name__ == "__main__":
    sys.exit(main())
