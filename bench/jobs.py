"""Job-system throughput and latency per topology, beside a bare asyncio baseline.

Run from the repository root::

    .venv/bin/python bench/jobs.py                  # full run, two to three minutes
    .venv/bin/python bench/jobs.py --quick          # smoke run, a few seconds
    .venv/bin/python bench/jobs.py --markdown       # the table as markdown
    .venv/bin/python bench/jobs.py --only inline,tcp --repeat 5
    .venv/bin/python bench/jobs.py --only tcp --store temporary   # tcp on PostgreSQL too
    .venv/bin/python bench/jobs.py --profile /tmp/inline.pstats   # profile one inline run

Every job is ``bench.noop`` (``bench/bench_works.py``): an async work that returns
None, so what is measured is the job system around it. Two measures per topology:

``jobs/s``
    N jobs submitted by 64 concurrent submitters (each ``Client.submit`` returns once
    the job is stored), then every result awaited (``JobHandle.result``, 64 waiters):
    N divided by the time from the first submit to the last result.
``p50 ms``, ``p99 ms``
    With the pool idle, one job at a time: submit, then wait for its result; the
    median and the 99th percentile over M jobs (a pause of 2 ms, untimed, between jobs
    lets the previous job's acknowledgement settle).

Topologies, each with a fresh temporary directory for the store and the outbox:

``inline``
    ``[jobs] topology = "inline"``: Scheduler (at ``inproc://``), a ``local`` Pool of
    64 workers (no-op async work awaits nothing, so 64 slots keep the pipeline full
    without threads) and the client, all on this process's loop.
``process``
    ``topology = "local"``: Scheduler and Pool in this process, a ``process`` Pool of
    2 workers, each a child process over ``pipe://``.
``tcp``
    ``topology = "distributed"``: ``python -m actorwork scheduler`` listening on
    ``tcp://127.0.0.1:PORT`` in one process, ``python -m actorwork pool`` (a ``local``
    Pool of 64) in another, the client here. Readiness is a submitted job that comes
    back, polled, not a sleep.

``--store URL`` runs the tcp topology a second time with the Scheduler on that store
(``postgresql://...``; ``temporary`` starts a throwaway PostgreSQL server, as the
tests do), beside SQLite in the same table.

Durability is what a deployment gets by default: the store is SQLite in WAL mode with
``PRAGMA synchronous`` from ``[scheduler] synchronous`` (``normal`` unless
``--synchronous`` says otherwise: a commit survives a crash of the process, not
necessarily a power cut), and the Pool's outbox appends each batch of results to its
log and fdatasyncs it before it reports them. The header names the file system of the
temporary directory: a sync is free on tmpfs.

The baseline, measured in the same run and taking turns with the job system, does the
same calls with no actors and no store: a coroutine of the same no-op work per job,
handed with a future through one ``asyncio.Queue`` to as many consumer tasks as the
topology's pool has workers; a consumer awaits the coroutine and sets the future.
``ratio`` is actorwork divided by baseline (for jobs/s higher is better, for latency
lower is better). ``target`` and ``met`` compare actorwork's own number with the
issue's targets for a 2-core machine; they are information, never an assertion.

For scale, the issue quotes for a 2-core machine against a local Redis that keeps
nothing on disk: Celery about 750 jobs/s (solo pool) to 970 (prefork, 2 children), p50
1.8 ms; Dramatiq about 1,850 jobs/s (8 threads), p50 7.9 ms; arq about 1,200 jobs/s
with a 1 ms poll, p50 2.8 ms; RQ about 48 jobs/s.

``--profile PATH`` runs one inline throughput run of N jobs under cProfile instead of
the table, writes the stats to PATH, and prints what each job cost: messages per
actor and type, store commits and rows, outbox writes and fsyncs, and the busiest
functions of the event loop's thread.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import functools
import gc
import math
import os
import pstats
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from _table import (
    format_rows,
    host_line,
    parse_table_arguments,
    ratio,
    stdout_to_stderr,
    table_arguments,
)
from _table import quiet_logs as quiet_structlog
from bench_works import noop

import actorwork as aw
from actorwork.client import Client, JobHandle
from actorwork.config import load_config
from actorwork.errors import ActorworkError

# --- constants -----------------------------------------------------------------------------

TOPOLOGIES = ("inline", "process", "tcp")
WORK = "bench.noop"
MODULE = "bench_works"
BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
SUBMITTERS = 64
LOCAL_POOL_SIZE = 64
PROCESS_POOL_SIZE = 2
LATENCY_GAP = 0.002  # seconds of idle between latency samples, outside the timing
RESULT_TIMEOUT = 120.0  # generous: a stalled run should fail, not hang
READY_DEADLINE = 30.0
LOG_LEVEL = "warning"

POOL_SIZES = {"inline": LOCAL_POOL_SIZE, "process": PROCESS_POOL_SIZE, "tcp": LOCAL_POOL_SIZE}

#: The issue's targets: (">=", jobs/s) or ("<=", ms). None: no target given.
TARGETS: dict[tuple[str, str], tuple[str, float]] = {
    ("inline", "jobs/s"): (">=", 10_000),
    ("tcp", "jobs/s"): (">=", 5_000),
    ("inline", "p50 ms"): ("<=", 1.0),
    ("tcp", "p50 ms"): ("<=", 2.0),
}
MEASURES = ("jobs/s", "p50 ms", "p99 ms")

T = TypeVar("T")


@dataclass(frozen=True)
class Sizes:
    """How many jobs each measurement runs, and how often it is repeated.

    The process topology has 2 workers whose every result waits for an outbox fsync:
    it gets fewer jobs per throughput run, so that a full run stays within minutes.
    """

    throughput: int
    process_throughput: int
    latency: int
    repeat: int

    def jobs(self, topology: str) -> int:
        return self.process_throughput if topology == "process" else self.throughput


FULL = Sizes(throughput=3_000, process_throughput=600, latency=400, repeat=3)
QUICK = Sizes(throughput=300, process_throughput=100, latency=40, repeat=1)


@dataclass
class Row:
    """One line of the table; a value of None was not measured (``note`` says why)."""

    topology: str
    measure: str
    actor: float | None
    baseline: float | None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        return ratio(self.actor, self.baseline)

    @property
    def target(self) -> tuple[str, float] | None:
        return TARGETS.get((self.topology, self.measure))

    @property
    def met(self) -> str:
        target = self.target
        if target is None or self.actor is None:
            return "-"
        op, bound = target
        ok = self.actor >= bound if op == ">=" else self.actor <= bound
        return "yes" if ok else "NO"


# --- what is measured ------------------------------------------------------------------------


def shares(n: int, parts: int) -> list[int]:
    """``n`` split into ``parts`` counts that differ by at most one."""
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of ``samples``."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Latency:
    p50: float  # milliseconds
    p99: float


def latency_of(samples: list[float]) -> Latency:
    return Latency(percentile(samples, 0.50) * 1e3, percentile(samples, 0.99) * 1e3)


async def actor_throughput(client: Client, n: int) -> float:
    """Submit ``n`` jobs from SUBMITTERS tasks, then await every result; jobs per second."""
    handles: list[JobHandle] = []

    async def submit(count: int) -> None:
        for _ in range(count):
            handles.append(await client.submit(WORK))

    async def wait(share: list[JobHandle]) -> None:
        for handle in share:
            await handle.result(timeout=RESULT_TIMEOUT)  # JobFailed unless it succeeded

    start = time.perf_counter()
    async with asyncio.TaskGroup() as tg:
        for count in shares(n, SUBMITTERS):
            tg.create_task(submit(count))
    async with asyncio.TaskGroup() as tg:
        for i in range(SUBMITTERS):
            tg.create_task(wait(handles[i::SUBMITTERS]))
    return n / (time.perf_counter() - start)


async def actor_latency(client: Client, m: int) -> Latency:
    """Submit one job and wait for its result, ``m`` times."""
    samples: list[float] = []
    for _ in range(m):
        await asyncio.sleep(LATENCY_GAP)
        start = time.perf_counter()
        handle = await client.submit(WORK)
        await handle.result(timeout=RESULT_TIMEOUT)
        samples.append(time.perf_counter() - start)
    return latency_of(samples)


Item = tuple[Coroutine[Any, Any, Any], "asyncio.Future[Any]"]


@contextlib.asynccontextmanager
async def queue_pool(consumers: int) -> AsyncIterator[asyncio.Queue[Item]]:
    """The baseline's pool: ``consumers`` tasks that run coroutines from one queue."""
    queue: asyncio.Queue[Item] = asyncio.Queue()

    async def consume() -> None:
        get = queue.get
        while True:
            coro, future = await get()
            try:
                future.set_result(await coro)
            except Exception as exc:
                future.set_exception(exc)

    tasks = [asyncio.create_task(consume()) for _ in range(consumers)]
    try:
        yield queue
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def queue_throughput(consumers: int, n: int) -> float:
    """The baseline of :func:`actor_throughput`."""
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[Any]] = []
    async with queue_pool(consumers) as queue:

        async def submit(count: int) -> None:
            for _ in range(count):
                future = loop.create_future()
                await queue.put((noop(), future))
                futures.append(future)

        async def wait(share: list[asyncio.Future[Any]]) -> None:
            for future in share:
                await future

        start = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for count in shares(n, SUBMITTERS):
                tg.create_task(submit(count))
        async with asyncio.TaskGroup() as tg:
            for i in range(SUBMITTERS):
                tg.create_task(wait(futures[i::SUBMITTERS]))
        return n / (time.perf_counter() - start)


async def queue_latency(consumers: int, m: int) -> Latency:
    """The baseline of :func:`actor_latency`."""
    loop = asyncio.get_running_loop()
    samples: list[float] = []
    async with queue_pool(consumers) as queue:
        for _ in range(m):
            await asyncio.sleep(LATENCY_GAP)
            start = time.perf_counter()
            future = loop.create_future()
            await queue.put((noop(), future))
            await future
            samples.append(time.perf_counter() - start)
    return latency_of(samples)


async def interleaved(
    runs: dict[str, Callable[[int], Awaitable[T]]], n: int, repeat: int
) -> dict[str, list[T]]:
    """Every result of each ``run(n)`` over ``repeat`` rounds, after a warm-up of each.

    Every round runs each candidate once, so that a burst of load from elsewhere on
    the machine falls on the job system and its baseline alike.
    """
    for run in runs.values():
        await run(max(n // 10, 20))
    results: dict[str, list[T]] = {key: [] for key in runs}
    for _ in range(repeat):
        for key, run in runs.items():
            gc.collect()
            results[key].append(await run(n))
    return results


# --- topologies ------------------------------------------------------------------------------


def write_config(
    tmp: Path, topology: str, synchronous: str, address: str, store: str | None = None
) -> Path:
    """The configuration file of one topology, in its temporary directory; the store is
    SQLite there unless ``store`` names another."""
    jobs = {"inline": "inline", "process": "local", "tcp": "distributed"}[topology]
    kind = "process" if topology == "process" else "local"
    path = tmp / "actorwork.toml"
    path.write_text(
        f"""
[jobs]
topology = "{jobs}"
modules = ["{MODULE}"]

[scheduler]
address = "{address}"
store = "{store or tmp / "jobs.db"}"
synchronous = "{synchronous}"

[pools.bench]
kind = "{kind}"
size = {POOL_SIZES[topology]}
outbox = "{tmp / "outbox"}"
"""
    )
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def open_topology(
    topology: str, synchronous: str, store: str | None = None
) -> AsyncIterator[Client]:
    """A client of a running job system laid out as ``topology``; all of it closes after."""
    with tempfile.TemporaryDirectory(prefix="aw-bench-jobs-") as name:
        tmp = Path(name)
        if topology == "tcp":
            address = f"tcp://127.0.0.1:{free_port()}"
            config = write_config(tmp, topology, synchronous, address, store)
            with servers(tmp, config) as procs:
                async with aw.JobSystem(load_config(config, env={})) as jobs:
                    assert jobs.client is not None
                    await until_ready(jobs.client, procs, tmp)
                    yield jobs.client
            return
        config = write_config(tmp, topology, synchronous, f"inproc://bench-{tmp.name}")
        async with contextlib.AsyncExitStack() as stack:
            with stdout_to_stderr():  # process workers inherit fd 1: keep stdout for the table
                jobs = await stack.enter_async_context(aw.JobSystem(load_config(config, env={})))
            assert jobs.client is not None
            yield jobs.client


@contextlib.contextmanager
def servers(tmp: Path, config: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """The Scheduler and the Pool as ``python -m actorwork`` processes; stopped after.

    Each runs in a session of its own, so a Ctrl-C at the terminal reaches only this
    process, which then stops them: SIGTERM, then SIGKILL to the group if they linger.
    """
    path = os.pathsep.join(filter(None, [str(BENCH_DIR), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for role in ("scheduler", "pool"):
            command = [sys.executable, "-m", "actorwork", "--config", str(config)]
            with open(tmp / f"{role}.log", "wb") as log:
                procs[role] = subprocess.Popen(
                    [*command, "--log-level", LOG_LEVEL, role],
                    cwd=REPO,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
        yield procs
    finally:
        for proc in reversed(procs.values()):
            stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # the group: anything it started goes too
    proc.wait()


async def until_ready(client: Client, procs: dict[str, subprocess.Popen[bytes]], tmp: Path) -> None:
    """Poll with a submitted job until one comes back through Scheduler and Pool."""
    deadline = time.monotonic() + READY_DEADLINE
    while True:
        for role, proc in procs.items():
            if proc.poll() is not None:
                tail = (tmp / f"{role}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"the {role} process exited with {proc.returncode}: {tail}")
        try:
            handle = await asyncio.wait_for(client.submit(WORK), 2.0)
            await handle.result(timeout=2.0)
        except (ActorworkError, OSError, TimeoutError):
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"no job came back within {READY_DEADLINE:g} s of starting the servers"
                ) from None
            await asyncio.sleep(0.05)
        else:
            return


# --- one topology ----------------------------------------------------------------------------


async def bench_topology(
    topology: str, sizes: Sizes, synchronous: str, store: str | None = None, label: str = ""
) -> list[Row]:
    consumers = POOL_SIZES[topology]
    async with open_topology(topology, synchronous, store) as client:
        rates = await interleaved(
            {
                "baseline": functools.partial(queue_throughput, consumers),
                "actor": functools.partial(actor_throughput, client),
            },
            sizes.jobs(topology),
            sizes.repeat,
        )
        latencies = await interleaved(
            {
                "baseline": functools.partial(queue_latency, consumers),
                "actor": functools.partial(actor_latency, client),
            },
            sizes.latency,
            sizes.repeat,
        )
    name = label or topology
    return [
        Row(name, "jobs/s", max(rates["actor"]), max(rates["baseline"])),
        Row(
            name,
            "p50 ms",
            min(r.p50 for r in latencies["actor"]),
            min(r.p50 for r in latencies["baseline"]),
        ),
        Row(
            name,
            "p99 ms",
            min(r.p99 for r in latencies["actor"]),
            min(r.p99 for r in latencies["baseline"]),
        ),
    ]


async def run_benchmarks(
    selected: list[str], sizes: Sizes, synchronous: str, store: str | None = None
) -> list[Row]:
    """Every selected topology on SQLite; with ``store``, tcp on that store too, beside."""
    runs = [(topology, None, topology) for topology in selected]
    if store is not None:
        runs.append(("tcp", store, "tcp postgresql"))
    rows: list[Row] = []
    for topology, url, label in runs:
        print(f"measuring {label} ...", file=sys.stderr, flush=True)
        try:
            rows.extend(await bench_topology(topology, sizes, synchronous, url, label))
        except Exception as exc:
            rows.extend(Row(label, m, None, None, f"failed: {exc!r}") for m in MEASURES)
    return rows


@contextlib.contextmanager
def store_url(given: str | None) -> Iterator[str | None]:
    """The ``--store`` URL; ``temporary`` starts a PostgreSQL server for the run."""
    if given != "temporary":
        yield given
        return
    from actorwork.testing.stores import TemporaryPostgres

    server = TemporaryPostgres()
    try:
        server.start()
        yield server.url(server.create_database("bench"))
    finally:
        server.stop()


# --- the profile -----------------------------------------------------------------------------


@dataclass
class Counts:
    """What one profiled run did, counted by wrapping a few methods for its duration."""

    messages: Counter[str] = field(default_factory=Counter)
    commits: int = 0
    committed_rows: int = 0
    commit_seconds: float = 0.0
    outbox_writes: int = 0
    outbox_entries: int = 0
    outbox_bytes: int = 0
    outbox_seconds: float = 0.0
    outbox_removes: int = 0
    outbox_removed: int = 0
    fsyncs: int = 0
    #: (what, time.perf_counter()) of every counted step, from whichever thread.
    events: list[tuple[str, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            fresh = vars(Counts())
            fresh.pop("lock")
            vars(self).update(fresh)


@contextlib.contextmanager
def counting() -> Iterator[Counts]:
    """Count messages per actor, store commits, outbox writes and fsyncs while inside.

    The wrapped names are internals of actorwork; one that is missing is skipped.
    """
    from actorwork import worker
    from actorwork.pool import actor as pool
    from actorwork.pool import outbox
    from actorwork.scheduler import actor as scheduler
    from actorwork.stores import sqlite as store

    counts = Counts()
    patches: list[tuple[Any, str, Any]] = []

    def patch(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
        original = getattr(owner, name, None)
        if original is not None:
            patches.append((owner, name, original))
            setattr(owner, name, functools.wraps(original)(make(original)))

    def receive(actor: str) -> Callable[[Any], Any]:
        def make(original: Any) -> Any:
            async def counted(self: Any, message: Any) -> Any:
                key = f"{actor} <- {type(message).__name__}"
                counts.messages[key] += 1
                counts.events.append((key, time.perf_counter()))
                return await original(self, message)

            return counted

        return make

    def apply(original: Any) -> Any:
        def counted(self: Any, batch: Any) -> Any:
            start = time.perf_counter()
            counts.events.append(("store commit begins", start))
            try:
                return original(self, batch)
            finally:
                counts.events.append(("store commit ends", time.perf_counter()))
                with counts.lock:
                    counts.commits += 1
                    counts.committed_rows += batch.size
                    counts.commit_seconds += time.perf_counter() - start

        return counted

    def put_many(original: Any) -> Any:
        def counted(self: Any, items: Any) -> Any:
            items = list(items)
            start = time.perf_counter()
            counts.events.append(("outbox write begins", start))
            try:
                return original(self, items)
            finally:
                counts.events.append(("outbox write ends", time.perf_counter()))
                with counts.lock:
                    counts.outbox_writes += 1
                    counts.outbox_entries += len(items)
                    counts.outbox_bytes += sum(len(data) for _, data in items)
                    counts.outbox_seconds += time.perf_counter() - start

        return counted

    def remove_many(original: Any) -> Any:
        def counted(self: Any, keys: Any) -> Any:
            keys = list(keys)
            with counts.lock:
                counts.outbox_removes += 1
                counts.outbox_removed += len(keys)
            return original(self, keys)

        return counted

    def fsync(original: Any) -> Any:
        def counted(fd: int) -> None:
            with counts.lock:
                counts.fsyncs += 1
            original(fd)

        return counted

    patch(scheduler.Scheduler, "receive", receive("Scheduler"))
    patch(pool.Pool, "receive", receive("Pool"))
    patch(worker.Worker, "receive", receive("Worker"))
    # _write is the commit of both paths: the store's thread and the loop's own connection.
    patch(getattr(store, "_Database", None), "_write", apply)
    patch(outbox.Outbox, "put_many", put_many)
    patch(outbox.Outbox, "remove_many", remove_many)
    patch(os, "fsync", fsync)
    patch(os, "fdatasync", fsync)
    try:
        yield counts
    finally:
        for owner, name, original in reversed(patches):
            setattr(owner, name, original)


async def profile_inline(n: int, m: int, synchronous: str, path: Path) -> None:
    """Where an inline job's time goes: counts of a throughput run of ``n`` jobs and of a
    latency run of ``m``, then the throughput run again under cProfile."""
    with counting() as counts:
        async with open_topology("inline", synchronous) as client:
            await actor_throughput(client, max(n // 10, 20))  # warm-up, not counted
            counts.reset()
            wall, cpu, loop_cpu = time.perf_counter(), time.process_time(), time.thread_time()
            rate = await actor_throughput(client, n)
            wall = time.perf_counter() - wall
            cpu, loop_cpu = time.process_time() - cpu, time.thread_time() - loop_cpu
            print(f"inline throughput, {n:,} jobs from {SUBMITTERS} submitters: {rate:,.0f} jobs/s")
            print(
                f"  per job: wall {wall / n * 1e6:,.0f} us, CPU {cpu / n * 1e6:,.0f} us "
                f"(event loop thread {loop_cpu / n * 1e6:,.0f} us)"
            )
            print_counts(counts, n)
            counts.reset()
            latency = await actor_latency(client, m)
            print(
                f"\ninline latency, {m:,} jobs one at a time: p50 {latency.p50:.3f} ms, "
                f"p99 {latency.p99:.3f} ms"
            )
            print_counts(counts, m)
            await trace_latency(client, counts, m)
            profiler = cProfile.Profile()
            profiler.enable()
            await actor_throughput(client, n)
            profiler.disable()
    profiler.dump_stats(path)
    print(f"\nthroughput run under cProfile, event loop thread, by own time (stats in {path}):")
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(30)


async def trace_latency(client: Client, counts: Counts, m: int) -> None:
    """The latency path step by step: the median time from submit to each counted step."""
    offsets: dict[str, list[float]] = {}
    for _ in range(m):
        await asyncio.sleep(LATENCY_GAP)
        mark = len(counts.events)
        start = time.perf_counter()
        handle = await client.submit(WORK)
        submitted = time.perf_counter()
        await handle.result(timeout=RESULT_TIMEOUT)
        end = time.perf_counter()
        steps = [("client: submit returns", submitted), ("client: result returns", end)]
        seen: Counter[str] = Counter()
        for what, at in sorted(counts.events[mark:] + steps, key=lambda step: step[1]):
            if start <= at <= end:
                seen[what] += 1
                label = what if seen[what] == 1 else f"{what} ({seen[what]})"
                offsets.setdefault(label, []).append(at - start)
    print(f"  the path of one job, median ms since submit (in how many of {m} jobs):")
    medians = {label: percentile(times, 0.5) for label, times in offsets.items()}
    for label in sorted(medians, key=medians.__getitem__):
        print(f"    {medians[label] * 1e3:7.3f}  {label} ({len(offsets[label])})")


def print_counts(counts: Counts, n: int) -> None:
    total = sum(counts.messages.values())
    print(f"  messages handled by actors: {total / n:.2f} per job (each ask adds a reply)")
    for key, count in counts.messages.most_common():
        print(f"    {key:36} {count / n:6.3f} per job")
    if counts.commits:
        print(
            f"  store commits: {counts.commits / n:.3f} per job, "
            f"{counts.committed_rows / counts.commits:.1f} rows and "
            f"{counts.commit_seconds / counts.commits * 1e3:.2f} ms each "
            f"({counts.commit_seconds / n * 1e6:,.0f} us per job on the store thread)"
        )
    if counts.outbox_writes:
        print(
            f"  outbox writes: {counts.outbox_writes / n:.3f} per job, "
            f"{counts.outbox_entries / counts.outbox_writes:.1f} entries, "
            f"{counts.outbox_bytes / counts.outbox_writes:,.0f} bytes and "
            f"{counts.outbox_seconds / counts.outbox_writes * 1e3:.2f} ms each; "
            f"removals: {counts.outbox_removes / n:.3f} calls per job"
        )
    print(f"  syncs (os.fsync and os.fdatasync: the outbox): {counts.fsyncs / n:.3f} per job")


# --- the table -------------------------------------------------------------------------------

COLUMNS = ("topology", "measure", "actorwork", "baseline", "ratio", "target", "met")


def cells(row: Row) -> list[str]:
    def value(number: float | None) -> str:
        if number is None:
            return "n/a"
        return f"{number:,.0f}" if row.measure == "jobs/s" else f"{number:,.3f}"

    ratio, target = row.ratio, row.target
    return [
        row.topology,
        row.measure,
        value(row.actor),
        value(row.baseline),
        "-" if ratio is None else f"{ratio:,.3f}" if ratio < 1 else f"{ratio:,.1f}",
        "-" if target is None else f"{target[0]} {target[1]:,g}",
        row.met,
    ]


def table(rows: list[Row], *, markdown: bool) -> str:
    notes = ((row.topology, row.note) for row in rows)
    return format_rows(COLUMNS, rows, cells, notes, numeric={2, 3, 4}, markdown=markdown)


def filesystem(path: str) -> str:
    """The type and device of the file system holding ``path`` (Linux), else 'unknown'."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return "unknown"
    real = os.path.realpath(path)
    best = ("", "unknown")
    for line in mounts:
        device, point, kind, *_ = line.split()
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, f"{kind} ({device})")
    return best[1]


def describe(sizes: Sizes, synchronous: str) -> list[str]:
    return [
        f"{host_line()}; jobs/s: {sizes.throughput:,} jobs "
        f"({sizes.process_throughput:,} process) from {SUBMITTERS} submitters; "
        f"latency: {sizes.latency:,} jobs one at a time; best of {sizes.repeat}",
        f"durability: SQLite WAL, synchronous={synchronous}; the Pool's outbox appends "
        f"each result batch to its log and fdatasyncs it; temporary directories on "
        f"{filesystem(tempfile.gettempdir())}",
        f"pools: inline local x{LOCAL_POOL_SIZE}, process x{PROCESS_POOL_SIZE} children, "
        f"tcp local x{LOCAL_POOL_SIZE} (Scheduler and Pool each a process); baseline: "
        "asyncio.Queue to as many consumer tasks, a future per job, no actors, no store",
        "ratio = actorwork / baseline (jobs/s: higher is better; ms: lower is better)",
    ]


# --- entry points ----------------------------------------------------------------------------


def quiet_logs() -> None:
    """Warnings and worse, to stderr, here and in the children: stdout carries the table."""
    os.environ["ACTORWORK_LOG_LEVEL"] = LOG_LEVEL
    quiet_structlog()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    table_arguments(parser, TOPOLOGIES, "topology")
    parser.add_argument(
        "--synchronous",
        choices=("off", "normal", "full"),
        default="normal",
        help="[scheduler] synchronous, the store's PRAGMA synchronous (default normal)",
    )
    parser.add_argument(
        "--store",
        metavar="URL",
        help="also run tcp on this store (postgresql://...; 'temporary' starts a server)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="PATH",
        help="instead of the table, profile one inline throughput run; write pstats to PATH",
    )
    return parse_table_arguments(parser, argv, TOPOLOGIES, "topology")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_logs()
    # SIGTERM stops the run like Ctrl-C does: the Scheduler and Pool processes are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sizes = QUICK if args.quick else FULL
    if args.repeat is not None:
        sizes = Sizes(sizes.throughput, sizes.process_throughput, sizes.latency, args.repeat)
    try:
        if args.profile is not None:
            asyncio.run(
                profile_inline(sizes.throughput, sizes.latency, args.synchronous, args.profile)
            )
            return 0
        with store_url(args.store) as store:
            rows = asyncio.run(run_benchmarks(args.only, sizes, args.synchronous, store))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print("\n".join(describe(sizes, args.synchronous)))
    print()
    print(table(rows, markdown=args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
