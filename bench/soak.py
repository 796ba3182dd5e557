"""A bounded soak: the distributed topology under full load, watched for growth.

``python -m actorwork scheduler`` and ``python -m actorwork pool`` run as processes of
their own on a tcp loopback address, as in production; this process is the client and
keeps ``--window`` jobs in flight for ``--minutes``. Every ``--interval`` seconds it
samples each role's resident memory (the Pool's with its worker processes, if any)
and the size of the store on disk (the database, its WAL and anything beside it).

After the warm-up it fits a line to each series and reports its slope per minute. The
warm-up is the first ``--warmup`` fraction of the run, and never shorter than two
pruning rounds after the first finished jobs expire (``--keep``), so the store is
measured once retention holds it steady. The slope is the median of the slopes between
every pair of samples (Theil-Sen), so a lone spike of a noisy, shared machine does not
move it. A series *grows* when its slope is above its tolerance both over the whole
measured part and over its second half: growth that stays, not a step (a step early
in the measured part leaves the second half flat). The run exits 1 when any series
grows, or when too few samples were taken after the warm-up to tell.

    .venv/bin/python bench/soak.py                   # 5 minutes, the README's figures
    .venv/bin/python bench/soak.py --minutes 1 --interval 2 --markdown
    .venv/bin/python bench/soak.py --trace /tmp/soak-trace   # what grows, per role

``--trace DIR`` runs every role under ``tracemalloc``: from the end of the warm-up on,
each process writes ``DIR/<role>.txt`` every ``--interval`` with the allocation sites
and the object types (``gc.get_objects()``) that grew since the warm-up ended. Tracing
slows every role down and its records take memory of their own: a traced run says
where memory goes, not whether RSS stays flat.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _table import format_table
from jobs import WORK, free_port, quiet_logs, servers, until_ready

import actorwork as aw
from actorwork import load_config

#: Memory may drift by this much per minute (MiB) before it counts as growth.
RSS_TOLERANCE_MIB = 0.25
#: The store may drift by this much per minute (MiB): pruning runs in batches.
STORE_TOLERANCE_MIB = 0.5
#: Fewer samples than this after the warm-up cannot tell growth from noise.
MIN_SAMPLES = 8


def write_config(tmp: Path, address: str, keep: float, pool_size: int) -> Path:
    path = tmp / "actorwork.toml"
    hours = keep / 3600
    retention = (
        f"[retention]\nsucceeded = {{ hours = {hours!r} }}\nfailed = {{ hours = {hours!r} }}\n"
        f"interval = {prune_interval(keep)!r}\n"
        if keep > 0
        else ""
    )
    path.write_text(
        f"""
[jobs]
topology = "distributed"
modules = ["bench_works"]

[scheduler]
address = "{address}"
store = "{tmp / "store" / "jobs.db"}"

{retention}
[pools.soak]
kind = "local"
size = {pool_size}
outbox = "{tmp / "outbox"}"
"""
    )
    return path


#: Imported by every Python process of the run when ``--trace`` is given (a
#: ``sitecustomize`` module first on their path): a thread of the process writes what
#: grew since the end of the warm-up. ``ACTORWORK_SOAK_TRACE`` is "DIR,warm-up s,every s".
_SITECUSTOMIZE = """
import os

if os.environ.get("ACTORWORK_SOAK_TRACE"):
    import gc, sys, threading, time, tracemalloc
    from collections import Counter

    def _role():
        roles = [a for a in sys.argv[1:] if a in ("scheduler", "pool", "client")]
        return roles[-1] if roles else f"pid-{os.getpid()}"

    def _counts():
        gc.collect()
        return Counter(type(o).__module__ + "." + type(o).__qualname__ for o in gc.get_objects())

    def _watch(directory, warmup, every):
        # Tracing from the start would slow start-up past the soak's readiness deadline;
        # what grows after the warm-up was allocated after its middle anyway.
        time.sleep(warmup / 2)
        tracemalloc.start(16)
        time.sleep(warmup / 2)
        base, types, n = tracemalloc.take_snapshot(), _counts(), 0
        while True:
            time.sleep(every)
            n += 1
            grown = (_counts() - types).most_common(15)  # before the diff's own objects
            # Nothing this thread allocated: it is the tracer, not the role.
            ignore = [tracemalloc.Filter(False, __file__, all_frames=True)]
            snap = tracemalloc.take_snapshot().filter_traces(ignore)
            diff = snap.compare_to(base.filter_traces(ignore), "traceback")
            lines = [f"== sample {n}, {n * every:.0f} s after warm-up"]
            for stat in [d for d in diff if d.size_diff > 0][:12]:
                lines.append(f"{stat.size_diff / 1024:+.1f} KiB {stat.count_diff:+d} blocks")
                lines.extend("    " + str(frame) for frame in stat.traceback.format()[-12:])
            lines.append("-- object types grown: " + ", ".join(f"{k} +{v}" for k, v in grown))
            with open(os.path.join(directory, _role() + ".txt"), "a") as out:
                out.write("\\n".join(lines) + "\\n")

    _directory, _warmup, _every = os.environ["ACTORWORK_SOAK_TRACE"].split(",")
    threading.Thread(
        target=_watch, args=(_directory, float(_warmup), float(_every)), daemon=True
    ).start()
"""


def trace_roles(directory: Path, warmup: float, every: float) -> None:
    """Make every Python process started from here on (and this one) write what grows."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    os.environ["ACTORWORK_SOAK_TRACE"] = f"{directory},{warmup!r},{every!r}"
    path = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(directory), path]))
    sys.argv.append("client")
    exec(compile(_SITECUSTOMIZE, "sitecustomize", "exec"), {"__file__": "sitecustomize"})


def rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and its children, in MiB (0 when it is gone)."""
    total = 0
    pids = [pid]
    with contextlib.suppress(OSError):
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids.extend(int(child) for child in children)
    for each in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def tree_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


@dataclass
class Series:
    name: str
    tolerance: float
    points: list[tuple[float, float]] = field(default_factory=list)  # (minutes, MiB)

    def add(self, minutes: float, value: float) -> None:
        self.points.append((minutes, value))

    def after(self, start: float) -> list[tuple[float, float]]:
        return [p for p in self.points if p[0] >= start]

    def verdict(self, warmup_end: float) -> tuple[float, float, str]:
        """Slope after ``warmup_end``, slope of its second half, and "flat", "GROWS" or
        "too few samples" (which fails the run: it cannot tell)."""
        measured = self.after(warmup_end)
        if len(measured) < MIN_SAMPLES:
            return 0.0, 0.0, "too few samples"
        half = measured[len(measured) // 2 :]
        whole, late = slope(measured), slope(half)
        grows = whole > self.tolerance and late > self.tolerance
        return whole, late, "GROWS" if grows else "flat"


def slope(points: list[tuple[float, float]]) -> float:
    """Theil-Sen slope of ``points`` (y per x): the median of the slopes of all pairs."""
    slopes = sorted(
        (y2 - y1) / (x2 - x1)
        for i, (x1, y1) in enumerate(points)
        for x2, y2 in points[i + 1 :]
        if x2 != x1
    )
    return statistics.median(slopes) if slopes else 0.0


def warmup_minutes(args: argparse.Namespace) -> float:
    """The ``--warmup`` fraction of the run, but at least until retention holds the
    store steady: the first finished jobs expire after ``--keep`` s and go within two
    pruning rounds."""
    settle = (args.keep + 2 * prune_interval(args.keep)) / 60 if args.keep > 0 else 0.0
    return max(args.minutes * args.warmup, settle)


def prune_interval(keep: float) -> float:
    """Seconds between the Scheduler's pruning rounds in the soak's config."""
    return max(1.0, keep / 6)


async def load(client: aw.Client, window: int, stop: asyncio.Event, done: list[int]) -> None:
    async def loop() -> None:
        while not stop.is_set():
            handle = await client.submit(WORK)
            await handle.result(timeout=60)
            done[0] += 1

    async with asyncio.TaskGroup() as tg:
        for _ in range(window):
            tg.create_task(loop())


async def soak(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="aw-soak-") as name:
        tmp = Path(name)
        address = f"tcp://127.0.0.1:{free_port()}"
        config = write_config(tmp, address, args.keep, args.pool_size)
        with servers(tmp, config) as procs:
            async with aw.JobSystem(load_config(config, env={})) as jobs:
                assert jobs.client is not None
                await until_ready(jobs.client, procs, tmp)
                series = await measure(args, jobs.client, procs, tmp)
        rate = series.pop()
        warmup_end = warmup_minutes(args)
        rows, grows = [], False
        for each in series:
            first, last = each.points[0][1], each.points[-1][1]
            whole, late, verdict = each.verdict(warmup_end)
            grows = grows or verdict != "flat"
            rows.append(
                [
                    each.name,
                    f"{first:,.1f}",
                    f"{last:,.1f}",
                    f"{whole:+.3f}",
                    f"{late:+.3f}",
                    f"{each.tolerance:g}",
                    verdict,
                ]
            )
        columns = [
            "series (MiB)",
            "start",
            "end",
            "slope/min after warm-up",
            "slope/min, 2nd half",
            "tolerance",
            "verdict",
        ]
        notes = [
            f"{args.minutes:g} min, warm-up {warmup_end:.3g} min, {rate.points[-1][1]:,.0f} jobs/s "
            f"on average, {args.window} jobs in flight, pool of {args.pool_size} local workers, "
            f"finished jobs kept {args.keep:g} s",
        ]
        if args.trace is not None:
            notes.append(
                "traced: memory counts tracemalloc's own records too, so RSS grows; read the "
                f"growth per role in {args.trace}/<role>.txt instead"
            )
        print(format_table(columns, rows, notes, numeric={1, 2, 3, 4, 5}, markdown=args.markdown))
        return 1 if grows else 0


async def measure(
    args: argparse.Namespace, client: aw.Client, procs: dict[str, object], tmp: Path
) -> list[Series]:
    pids = {role: proc.pid for role, proc in procs.items()}  # type: ignore[attr-defined]
    series = [
        Series("scheduler RSS", RSS_TOLERANCE_MIB),
        Series("pool RSS", RSS_TOLERANCE_MIB),
        Series("client RSS", RSS_TOLERANCE_MIB),
        Series("store on disk", STORE_TOLERANCE_MIB),
    ]
    rate = Series("jobs/s", 0.0)
    stop, done = asyncio.Event(), [0]
    start = time.monotonic()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(load(client, args.window, stop, done))
        end = start + args.minutes * 60
        while (now := time.monotonic()) < end:
            await asyncio.sleep(min(args.interval, end - now))
            minutes = (time.monotonic() - start) / 60
            series[0].add(minutes, rss_mib(pids["scheduler"]))
            series[1].add(minutes, rss_mib(pids["pool"]))
            series[2].add(minutes, rss_mib(os.getpid()))
            series[3].add(minutes, tree_mib(tmp / "store"))
            rate.add(minutes, done[0] / (minutes * 60))
            if args.verbose:
                print(
                    "  ".join(f"{s.name} {s.points[-1][1]:.1f}" for s in series)
                    + f"  jobs {done[0]:,}",
                    file=sys.stderr,
                )
        stop.set()
    return [*series, rate]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=5.0, help="length of the run")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=0.4, help="fraction not measured")
    parser.add_argument("--window", type=int, default=64, help="jobs in flight")
    parser.add_argument("--pool-size", type=int, default=16, help="local workers")
    parser.add_argument("--keep", type=float, default=30.0, help="seconds finished jobs stay")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    parser.add_argument("--verbose", action="store_true", help="print every sample")
    parser.add_argument("--trace", type=Path, metavar="DIR", help="write what grows, per role")
    args = parser.parse_args(argv)
    if not 0 <= args.warmup < 0.9:
        parser.error(f"--warmup must be in [0, 0.9), got {args.warmup!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_logs()
    if args.trace is not None:
        every = max(args.interval, 30.0)
        trace_roles(args.trace.resolve(), warmup_minutes(args) * 60, every)
    return asyncio.run(soak(args))


if __name__ == "__main__":
    sys.exit(main())
