"""Job events: throughput with a subscriber watching everything, and progress latency.

    python bench/events.py [--quick] [--markdown]

Rows: no-op jobs/s inline with no subscriber and with one subscriber of every event
(and their ratio; the target is at least 0.9), and the latency from ``ctx.progress()``
in a worker to the event at a subscriber, p50 and p99, inline and over tcp (the
progress message carries the worker's wall time; both ends are on this host).
A benchmark, not a test: it prints a table and asserts nothing.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jobs as jobs_bench
from _table import percentile, quick_main

from actorwork import events as ev
from actorwork.client import Client

jobs_bench.MODULE = "events_works"


async def throughput(client: Client, count: int, *, watch: bool) -> tuple[float, int]:
    """Jobs/s of ``count`` no-op jobs submitted together, and events a watcher saw."""
    seen = 0

    async def submit_all() -> float:
        start = time.perf_counter()
        handles = []
        async with anyio.create_task_group() as tg:

            async def one() -> None:
                handles.append(await client.submit(jobs_bench.WORK))

            for _ in range(count):
                tg.start_soon(one)
        for handle in handles:
            await handle.wait(timeout=600)
        return count / (time.perf_counter() - start)

    if not watch:
        return await submit_all(), 0
    async with client.events(buffer=1_000_000) as stream, anyio.create_task_group() as tg:

        async def drain() -> None:
            nonlocal seen
            async for _ in stream:
                seen += 1

        tg.start_soon(drain)
        rate = await submit_all()
        tg.cancel_scope.cancel()
    return rate, seen


async def latency(client: Client, jobs: int, reports: int) -> list[float]:
    """Seconds from ``ctx.progress()`` to the subscriber, for every report seen."""
    delays: list[float] = []
    async with client.events(kinds=["job.progress"]) as stream:
        for _ in range(jobs):
            handle = await client.submit("bench.progress", reports)
            with anyio.fail_after(120):
                async for event in stream:
                    if isinstance(event, ev.JobProgress) and event.job_id == handle.id:
                        delays.append(time.time() - float(event.message))
                        if event.fraction == (reports - 1) / reports:
                            break
            await handle.wait(timeout=60)
    return delays


async def run(quick: bool) -> list[list[str]]:
    count = 2_000 if quick else 10_000
    rows = []
    async with jobs_bench.open_topology("inline", "normal") as client:
        await throughput(client, 200, watch=False)  # warm up
        base, _ = await throughput(client, count, watch=False)
        watched, seen = await throughput(client, count, watch=True)
        rows.append(["inline", "jobs/s, no subscriber", f"{base:,.0f}", ""])
        rows.append(["inline", "jobs/s, one subscriber (all events)", f"{watched:,.0f}", ""])
        rows.append(
            ["inline", "ratio (target >= 0.9)", f"{watched / base:.2f}", f"{seen:,} events"]
        )
    for topology in ("inline", "tcp"):
        async with jobs_bench.open_topology(topology, "normal") as client:
            delays = await latency(client, 5 if quick else 20, 10)
        p50, p99 = (percentile(delays, q) * 1000 for q in (0.5, 0.99))
        rows.append(
            [
                topology,
                "progress -> subscriber p50 / p99 (ms)",
                f"{p50:.2f} / {p99:.2f}",
                f"{len(delays)} reports",
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    columns = ["topology", "measure", "value", "note"]
    return quick_main(argv, __doc__.splitlines()[0], run, columns, numeric={2})


if __name__ == "__main__":
    sys.exit(main())
