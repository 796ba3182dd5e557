"""The HTTP API over a store of 100,000 jobs: the first page of jobs and a filtered count.

Run from the repository root::

    .venv/bin/python bench/api.py                 # 100,000 jobs, 200 requests a row
    .venv/bin/python bench/api.py --quick         # 10,000 jobs, 50 requests a row
    .venv/bin/python bench/api.py --markdown      # the table as markdown

The store is filled before anything serves it, through the store's own batch path
(``JobStore.apply`` of ``Persist`` and ``Record`` effects, 5,000 jobs a transaction,
as the Scheduler commits): 90% succeeded with a result, 5% failed, 2% dead, 1%
cancelled and 2% still queued, spread over ten works, created one every 10 ms.

Then the production shape runs, each role a process: ``python -m actorwork scheduler``
on that store, listening on ``tcp://127.0.0.1:PORT``, and ``python -m actorwork api``
(uvicorn on loopback) reaching it as any client does. This process asks the API over
real HTTP with one ``httpx`` client, one request at a time, after a warm-up: each row
is the p50 and p99 of the whole round trip (HTTP, the API's client, the Scheduler, the
store). Nothing else runs: no pool, no submits.

The target of issue 13 is a first page (``GET /jobs``) in 20 ms or less at p50.
A benchmark, not a test: it prints a table and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from _table import format_table, host_line, quiet_logs
from jobs import free_port

from actorwork.messages import WorkResult
from actorwork.stores.base import Job, Persist, Record
from actorwork.stores.registry import open_store

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
BATCH = 5_000  # jobs a transaction while filling
WORKS = 10
READY_DEADLINE = 60.0
TARGET_P50_MS = 20.0
#: (status, share in percent): the mix of the filled store.
MIX = (("succeeded", 90), ("failed", 5), ("dead", 2), ("cancelled", 1), ("queued", 2))
FILTER = "status=failed&work=bench.w3"


def _status(index: int) -> str:
    slot = index % 100
    for status, share in MIX:
        if slot < share:
            return status
        slot -= share
    raise AssertionError("the mix adds up to 100")


def _effects(index: int, now: float, total: int) -> list[object]:
    """One job's effects; a finished job carries its result, as the Scheduler writes it."""
    job_id = f"job-{index:07d}"
    status = _status(index)
    created = now - (total - index) * 0.01
    result = None
    if status in ("succeeded", "failed", "dead"):
        outcome = "succeeded" if status == "succeeded" else "error"
        result = WorkResult(
            job_id=job_id,
            attempt=1,
            outcome=outcome,
            value=b"\xa2ok" if outcome == "succeeded" else None,
            error="" if outcome == "succeeded" else "ValueError: bad input",
            started=created,
            finished=created + 0.001,
        )
    job = Job(
        id=job_id,
        work=f"bench.w{index % WORKS}",
        queue="default",
        priority=0,
        payload=b"\xc0",
        status=status,  # type: ignore[arg-type]
        attempt=1,
        max_attempts=3,
        created=created,
        updated=created + 0.001,
        seq=index + 1,
        result=result,
        error=result.error if result is not None else "",
    )
    return [Persist(job)] if result is None else [Persist(job), Record(result, True)]


async def fill(path: Path, total: int) -> float:
    """Write ``total`` jobs through the store's batch path; the seconds it took."""
    store = open_store(str(path))
    await store.open()
    try:
        start, now = time.perf_counter(), time.time()
        for first in range(0, total, BATCH):
            effects: list[object] = []
            for index in range(first, min(first + BATCH, total)):
                effects.extend(_effects(index, now, total))
            await store.apply(effects)
        return time.perf_counter() - start
    finally:
        await store.aclose()


def write_config(tmp: Path, port: int) -> Path:
    path = tmp / "actorwork.toml"
    path.write_text(
        f"""
[jobs]
topology = "distributed"

[scheduler]
address = "tcp://127.0.0.1:{port}"
store = "{tmp / "jobs.db"}"

[retention]
interval = 0
"""
    )
    return path


@contextlib.contextmanager
def serving(tmp: Path, config: Path, api_port: int) -> Iterator[None]:
    """The Scheduler and the API as processes, each in a session of its own; stopped after."""
    procs: list[subprocess.Popen[bytes]] = []
    command = [sys.executable, "-m", "actorwork", "--config", str(config), "--log-level", "warning"]
    try:
        for role, extra in (("scheduler", []), ("api", ["--address", f"127.0.0.1:{api_port}"])):
            with open(tmp / f"{role}.log", "wb") as log:
                procs.append(
                    subprocess.Popen(
                        [*command, role, *extra],
                        cwd=REPO,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=log,
                        start_new_session=True,
                    )
                )
        yield
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _tails(tmp: Path) -> str:
    """The end of each role's log: why it did not come up."""
    return "".join(path.read_text(errors="replace")[-1500:] for path in tmp.glob("*.log"))


async def until_ready(http: httpx.AsyncClient, tmp: Path) -> None:
    """Poll until the API answers a page from the Scheduler."""
    deadline = time.monotonic() + READY_DEADLINE
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if (await http.get("/jobs?limit=1")).status_code == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the API did not answer within {READY_DEADLINE:g} s: {_tails(tmp)}")
        await asyncio.sleep(0.1)


async def timed(http: httpx.AsyncClient, url: str, requests: int) -> tuple[list[float], dict]:
    """Milliseconds of each of ``requests`` GETs of ``url`` one at a time, and the last body."""
    for _ in range(max(requests // 10, 5)):  # warm-up, not counted
        (await http.get(url)).raise_for_status()
    samples: list[float] = []
    body: dict = {}
    for _ in range(requests):
        start = time.perf_counter()
        response = await http.get(url)
        samples.append((time.perf_counter() - start) * 1e3)
        response.raise_for_status()
        body = response.json()
    return samples, body


def percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[round(q * 100) - 1]


async def run(total: int, requests: int) -> tuple[list[list[str]], list[str]]:
    with tempfile.TemporaryDirectory(prefix="aw-bench-api-") as name:
        tmp = Path(name)
        seconds = await fill(tmp / "jobs.db", total)
        api_port = free_port()
        config = write_config(tmp, free_port())
        rows: list[list[str]] = []
        with serving(tmp, config, api_port):
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as http:
                await until_ready(http, tmp)
                for label, url, target in (
                    ("GET /jobs (first page)", "/jobs", f"p50 <= {TARGET_P50_MS:g}"),
                    (f"GET /jobs?{FILTER}", f"/jobs?{FILTER}", "-"),
                    ("... &count=true&limit=1", f"/jobs?{FILTER}&count=true&limit=1", "-"),
                ):
                    samples, body = await timed(http, url, requests)
                    p50, p99 = percentile(samples, 0.5), percentile(samples, 0.99)
                    met = "-" if target == "-" else ("yes" if p50 <= TARGET_P50_MS else "NO")
                    shown = f"count {body['count']:,}" if "count" in body else ""
                    shown = shown or f"{len(body['jobs'])} jobs"
                    rows.append([label, f"{p50:.2f}", f"{p99:.2f}", shown, target, met])
    notes = [
        host_line(),
        f"{total:,} jobs written through the store's batch path (JobStore.apply, "
        f"{BATCH:,} a transaction) in {seconds:.1f} s ({total / seconds:,.0f} jobs/s); "
        f"{requests} requests a row, one at a time, after a warm-up; SQLite store",
    ]
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 jobs, 50 requests a row")
    parser.add_argument("--markdown", action="store_true", help="a Markdown table")
    args = parser.parse_args(argv)
    quiet_logs()
    total, requests = (10_000, 50) if args.quick else (100_000, 200)
    rows, notes = asyncio.run(run(total, requests))
    for note in notes:
        print(note)
    print()
    print(
        format_table(
            ["request", "p50 ms", "p99 ms", "answer", "target", "met"],
            rows,
            [],
            numeric={1, 2},
            markdown=args.markdown,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
