"""Jobs/s with the dashboard open in headless Chromium, as a ratio to no browser.

    python bench/browser_dashboard.py [--quick] [--markdown]

One inline job system and one run: no-op jobs submitted together and awaited, with
the dashboard's page in Chromium on its overview (a live chart of every finished
job), and on the page of a busy job that logs and reports progress every 10 ms,
each as a ratio to the same page on ``about:blank`` (no dashboard, no socket) measured
in turns with it (while the busy job runs too, for the second). The page coalesces what
it is pushed into one redraw per animation frame; the Scheduler never waits for it.
Beside jobs/s, the CPU time per 1,000 jobs of this process (the Scheduler, the Pool,
the API and its sockets: what the page costs the job system) and of Chromium's
processes: on a loaded machine they tell more than the wall clock.

A second table: the jobs page opened with 100,000 jobs in the store (``--quick``:
10,000), put there through ``submit_many`` (a few large commits) and due tomorrow so
none runs; the time from navigation start to the first job's row in the DOM, as the
page's own clock (``performance.now()``) reads it when the row is added, p50 over
several loads.
A benchmark, not a test: it prints tables and asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dashboard_works
import events as events_bench
import jobs as jobs_bench
from _table import format_table, quiet_logs

from actorwork.chromium import PROFILE_PREFIX, Chromium
from actorwork.client import Client
from actorwork.config import ChromiumSettings
from actorwork.testing.web import served
from actorwork.web import create_app

jobs_bench.MODULE = "dashboard_works"
#: Measurements of each view, taken in turns; each row is their median.
ROUNDS = 5
#: Loads of the jobs page whose times to the first row are summed up.
LOADS = 9
#: Recorded in every document before its scripts run: when the first job row appears.
FIRST_ROW = """() => {
  new MutationObserver((changes, observer) => {
    if (document.querySelector('tr[data-job]')) {
      window.__firstRow = performance.now();
      observer.disconnect();
    }
  }).observe(document, {childList: true, subtree: true});
}"""


def chromium_seconds() -> float:
    """CPU seconds used so far by every Chromium process a launcher of ours started."""
    marker = f"--user-data-dir={Path(tempfile.gettempdir(), PROFILE_PREFIX)}".encode()
    total = 0.0
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "cmdline").read_bytes():
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except OSError:  # it ended meanwhile
            continue
    return total


def own_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Reading(NamedTuple):
    """One measurement: jobs/s, and CPU ms per 1,000 jobs of this process and of Chromium."""

    rate: float
    own_ms: float
    chromium_ms: float


async def measure(client: Client, count: int) -> Reading:
    own, chromium = own_seconds(), chromium_seconds()
    jobs_per_second, _ = await events_bench.throughput(client, count, watch=False)
    per_1000 = 1_000_000 / count
    return Reading(
        jobs_per_second,
        (own_seconds() - own) * per_1000,
        (chromium_seconds() - chromium) * per_1000,
    )


async def show(page: Any, url: str, ready: str) -> None:
    """Navigate ``page`` to ``url`` and wait until ``ready`` holds there."""
    await page.goto(url)
    await page.waitForFunction(ready, {"timeout": 60_000})


async def rounds(
    client: Client, count: int, page: Any, views: dict[str, str]
) -> dict[str, Reading]:
    """The medians of each view (``about:blank``: no dashboard), measured in turns."""
    readings: dict[str, list[Reading]] = {name: [] for name in views}
    for _ in range(ROUNDS):
        for name, url in views.items():
            await show(page, url, READY[name])
            readings[name].append(await measure(client, count))
    return {
        name: Reading(*(statistics.median(column) for column in zip(*values, strict=True)))
        for name, values in readings.items()
    }


def row(label: str, reading: Reading, baseline: Reading) -> list[str]:
    return [
        label,
        f"{reading.rate:,.0f}",
        f"{reading.rate / baseline.rate:.2f}",
        f"{reading.own_ms:,.0f}",
        f"{reading.chromium_ms:,.0f}",
    ]


#: What each view waits for before it is measured.
READY = {
    "none": "() => true",
    "overview": "() => document.body.dataset.live === 'subscribed'",
    "job": "() => document.querySelectorAll('#log .line').length > 10",
}


async def fill_store(client: Client, stored: int) -> None:
    """``stored`` no-op jobs in the store, due tomorrow: in submit_many's batches."""
    chunk = 10_000
    for start in range(0, stored, chunk):
        await client.submit_many("bench.noop", [None] * min(chunk, stored - start), delay=86_400)


async def first_rows(page: Any, url: str) -> list[float]:
    """Milliseconds from navigation start to the first job row, for each of LOADS loads."""
    times = []
    for _ in range(LOADS):
        await page.goto("about:blank")
        await page.goto(url)
        await page.waitForFunction("() => window.__firstRow !== undefined", {"timeout": 60_000})
        times.append(await page.evaluate("() => window.__firstRow"))
    return times


async def run(quick: bool) -> tuple[list[list[str]], list[list[str]]]:
    count = 1_000 if quick else 5_000
    stored = 10_000 if quick else 100_000
    async with (
        jobs_bench.open_topology("inline", "normal") as client,
        served(create_app(client)) as base,
        Chromium(ChromiumSettings(mode="local")) as browser,
    ):
        page = await browser.new_page()
        await page.setViewport({"width": 1280, "height": 860})
        await measure(client, 500)  # warm up
        idle = await rounds(client, count, page, {"none": "about:blank", "overview": f"{base}/"})
        busy = await client.submit("bench.busy", "watched")
        views = {"none": "about:blank", "job": f"{base}/#/job/{busy.id}"}
        watched = await rounds(client, count, page, views)
        dashboard_works.STOP.setdefault("watched", anyio.Event()).set()
        await busy.wait(timeout=60)
        await fill_store(client, stored)
        rendered = await browser.new_page()
        await rendered.setViewport({"width": 1280, "height": 860})
        await rendered.evaluateOnNewDocument(FIRST_ROW)
        times = await first_rows(rendered, f"{base}/#/jobs")
    ratios = [
        row("about:blank", idle["none"], idle["none"]),
        row("the overview", idle["overview"], idle["none"]),
        row("about:blank, a busy job running", watched["none"], watched["none"]),
        row("the busy job's page", watched["job"], watched["none"]),
    ]
    p50 = statistics.median(times)
    render = [
        f"the jobs page, {stored:,} jobs stored",
        f"{p50:.0f}",
        f"{min(times):.0f}",
        f"{max(times):.0f}",
        "yes" if p50 <= 200 else "no",
    ]
    return ratios, [render]


BUSY = "a log line and a progress report every 10 ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer jobs")
    parser.add_argument("--markdown", action="store_true", help="Markdown tables")
    args = parser.parse_args(argv)
    quiet_logs()
    ratios, render = anyio.run(run, args.quick)
    columns = ["page on", "jobs/s", "ratio (target >= 0.9)", "CPU ms/1000 jobs", "Chromium"]
    notes = [
        "inline, no-op jobs: 5,000 a measurement (--quick: 1,000), the median of 5 in turns",
        "CPU: this process (the job system, the API, its sockets); Chromium: all its processes",
        f"busy job: {BUSY}",
    ]
    print(format_table(columns, ratios, notes, numeric={1, 2, 3, 4}, markdown=args.markdown))
    print()
    columns = ["page", "first row p50 ms", "min ms", "max ms", "p50 <= 200 ms"]
    notes = [f"navigation start to the first job row in the DOM, {LOADS} loads"]
    print(format_table(columns, render, notes, numeric={1, 2, 3}, markdown=args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
