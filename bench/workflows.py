"""Dependencies and limits in the Scheduler's decisions: time beside independent jobs.

Run from the repository root::

    .venv/bin/python bench/workflows.py                 # the sizes of issue 15, ~10 s
    .venv/bin/python bench/workflows.py --repeat 5 --markdown

What is measured is :class:`actorwork.scheduler.state.SchedulerState`, the pure core the
Scheduler's shell drives: submits, dispatches and results go through it as the shell
feeds them, with a simulated pool of ``--slots`` slots that finishes its jobs in the
order it got them (no store, no transport, no worker: the Scheduler's own overhead).
Each workload runs beside a baseline of the same number of independent jobs, in the
same run, taking turns; each figure is the best of ``--repeat``, in CPU seconds of this
process (``time.process_time``): on a shared machine, the wall clock counts the other
processes' turns too, and a loaded one swung the ratios by half.

``limit 2 per key``
    ``--jobs`` jobs over ``--keys`` keys, at most 2 running per key; throughput as a
    ratio to the same jobs without a limit (target >= 0.8).
``chain``
    ``--chain`` jobs, each depending on the one before: one runs at a time.
``fan-in``
    ``--leaves`` parents and one child depending on all of them (its RunJob carries
    every parent's value).

``--inline N`` adds a second table, through a whole inline job system (store, pool,
workers, wall-clock seconds): a workflow ``sequence(items, for_each(leaf), total)``
fanning out to N leaves and in again, beside N independent jobs of the same work
submitted at once (``submit_many``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable

import msgspec
from _table import format_table

from actorwork.clock import Now
from actorwork.messages import RunJob, WorkResult
from actorwork.scheduler.state import Effect, Job, SchedulerState, Send
from actorwork.testing import job_system
from actorwork.work import Limit, WorkContext, work
from actorwork.workflow import Node, for_each, node_id, sequence, step, workflow

_VALUE = msgspec.msgpack.encode(1)
_PAYLOAD = msgspec.msgpack.encode(None)


class Run:
    """One state, one pool, a counter of time and a queue of what the pool runs."""

    def __init__(self, slots: int) -> None:
        self.state = SchedulerState(lease=3600.0)
        self.mono = itertools.count(1)
        self.running: deque[tuple[str, int]] = deque()
        self.done = 0
        self.slots = slots

    def now(self) -> Now:
        tick = next(self.mono) * 1e-6
        return Now(tick, 1_700_000_000.0 + tick)

    def take(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, Send) and isinstance(effect.message, RunJob):
                self.running.append((effect.message.job.id, effect.message.job.attempt))

    def job(self, job_id: str, **fields: object) -> Job:
        job = Job(
            id=job_id,
            work="w",
            queue="default",
            priority=0,
            payload=_PAYLOAD,
            status="queued",
            attempt=0,
            max_attempts=1,
            created=0.0,
            updated=0.0,
            seq=self.state.next_seq(),
        )
        for name, value in fields.items():
            setattr(job, name, value)
        return job

    def drain(self) -> None:
        state = self.state
        self.take(state.pool_ready("p", ["default"], self.slots, [], self.now()))
        while self.running:
            job_id, attempt = self.running.popleft()
            result = WorkResult(
                job_id=job_id, attempt=attempt, outcome="succeeded", value=_VALUE, pool="p"
            )
            self.take(state.result("p", result, self.now()))
            self.take(state.request_work("p", 1, self.now()))
            self.done += 1


def independent(count: int, slots: int) -> Run:
    run = Run(slots)
    for n in range(count):
        run.take(run.state.submit(run.job(f"j{n}"), run.now()))
    return run


def limited(count: int, keys: int, slots: int) -> Run:
    run = Run(slots)
    limit = Limit(concurrency=2, key="customer")
    for n in range(count):
        job = run.job(f"j{n}", limit=limit, limit_key=f"w[customer={n % keys}]")
        run.take(run.state.submit(job, run.now()))
    return run


def chain(count: int, slots: int) -> Run:
    run = Run(slots)
    for n in range(count):
        parents = (f"j{n - 1}",) if n else ()
        run.take(run.state.submit(run.job(f"j{n}", depends_on=parents), run.now()))
    return run


def fan_in(count: int, slots: int) -> Run:
    run = Run(slots)
    for n in range(count):
        run.take(run.state.submit(run.job(f"j{n}"), run.now()))
    parents = tuple(f"j{n}" for n in range(count))
    run.take(run.state.submit(run.job("child", depends_on=parents), run.now()))
    return run


@work(name="bench.workflows.items")
def items(count: int) -> list[int]:
    return list(range(count))


@work(name="bench.workflows.leaf")
def leaf(n: int) -> int:
    return n


@work(name="bench.workflows.total")
def total(ctx: WorkContext) -> int:
    return len(ctx.previous)


@workflow
def fan(count: int) -> Node:
    return sequence(items=step(items, count), leaves=for_each(leaf), total=step(total))


async def inline_run(count: int, flow: bool) -> float:
    """Seconds until ``count`` leaves ran, as a workflow (``flow``) or as lone jobs."""
    async with job_system() as jobs:
        client = jobs.client
        started = time.perf_counter()
        if flow:
            last = node_id(await client.submit_workflow(fan, count), "fan.total")
            assert (await client.wait(last)).status == "succeeded"
        else:
            for handle in await client.submit_many(leaf, range(count)):
                assert (await handle.wait()).status == "succeeded"
        return time.perf_counter() - started


def inline_table(count: int, repeat: int, markdown: bool) -> str:
    best = [float("inf"), float("inf")]
    for _ in range(repeat):
        for index, flow in enumerate((True, False)):
            best[index] = min(best[index], asyncio.run(inline_run(count, flow)))
    row = [
        "fan-out/fan-in workflow",
        str(count),
        f"{best[0] * 1e3:.0f}",
        f"{best[1] * 1e3:.0f}",
        f"{best[0] / best[1]:.2f}",
    ]
    columns = ["workload", "leaves", "ms", "independent ms", "time ratio"]
    notes = [f"inline job system, wall clock; best of {repeat}; time ratio target <= 1.5"]
    return format_table(columns, [row], notes, numeric={1, 2, 3, 4}, markdown=markdown)


def timed(make: Callable[[], Run]) -> tuple[float, int]:
    started = time.process_time()
    run = make()
    run.drain()
    assert not run.state.jobs, "every job must end"
    return time.process_time() - started, run.done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=1000)
    parser.add_argument("--chain", type=int, default=1000)
    parser.add_argument("--leaves", type=int, default=10_000)
    parser.add_argument("--slots", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--inline", type=int, default=0, metavar="N")
    args = parser.parse_args()
    workloads: list[tuple[str, Callable[[], Run], Callable[[], Run]]] = [
        (
            "limit 2 per key",
            lambda: limited(args.jobs, args.keys, args.slots),
            lambda: independent(args.jobs, args.slots),
        ),
        (
            "chain",
            lambda: chain(args.chain, args.slots),
            lambda: independent(args.chain, args.slots),
        ),
        (
            "fan-in",
            lambda: fan_in(args.leaves, args.slots),
            lambda: independent(args.leaves + 1, args.slots),
        ),
    ]
    rows = []
    for name, make, baseline in workloads:
        best = [float("inf"), float("inf")]
        done = 0
        for _ in range(args.repeat):
            for index, maker in enumerate((make, baseline)):
                seconds, done_now = timed(maker)
                best[index] = min(best[index], seconds)
                if index == 0:
                    done = done_now
        rows.append(
            [
                name,
                str(done),
                f"{best[0] * 1e3:.0f}",
                f"{best[1] * 1e3:.0f}",
                f"{best[0] / done * 1e6:.1f}",
                f"{best[1] / best[0]:.2f}",
            ]
        )
    columns = ["workload", "jobs", "cpu ms", "independent cpu ms", "us/job", "throughput ratio"]
    notes = [
        f"pure state, one simulated pool of {args.slots} slots; best of {args.repeat}",
        "throughput ratio: independent time / workload time (limit target >= 0.8; "
        "dependencies target >= 1/1.5)",
    ]
    print(format_table(columns, rows, notes, numeric={1, 2, 3, 4, 5}, markdown=args.markdown))
    if args.inline:
        print(inline_table(args.inline, args.repeat, args.markdown))


if __name__ == "__main__":
    main()
