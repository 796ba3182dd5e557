"""Cron decisions with 10,000 schedules: time per tick and memory, beside no schedules.

Run from the repository root::

    .venv/bin/python bench/schedules.py                 # 10,000 schedules, a few seconds
    .venv/bin/python bench/schedules.py --schedules 1000 --repeat 5 --markdown

What is measured first is :class:`actorwork.scheduler.cron_state.ScheduleBook`, the pure
core the Scheduler's shell ticks. Each workload registers ``--schedules`` schedules,
then ticks a simulated wall clock (``ManualClock``, no sleeping) and times each
``tick``:

``idle``
    a spread of schedules (below); ticks at times when none is due, as the shell does
    when woken for another reason: the cost of looking at the heap.
``spread``
    every schedule daily or hourly at a random minute (and hour), a third each in UTC,
    Europe/London and America/New_York; ticks once a minute for two simulated hours,
    so a tick finds about 1/60 of the hourly ones and a few daily ones due.
``burst``
    every schedule ``* * * * *``; one tick a minute, each finding all of them due: the
    worst case, one Fire per schedule per tick.

``burst, dispatched``
    the burst through the Scheduler's cron (:class:`actorwork.scheduler.cron.Cron`): each tick
    also makes the jobs, queues them in the Scheduler's state and dispatches them to a
    pool with room for all (the RunJob, store and fence effects, not yet sent).
``burst, committed``
    and then commits those effects to a SQLite job store (WAL, synchronous=normal) in
    one transaction, as the Scheduler's group commit does.

The baseline runs the same ticks on an empty book, in the same run, taking turns with
it. ``register ms`` is the time to register them all (each computes its first fire
time), ``us/tick`` the mean over a workload's ticks, each the best of ``--repeat``;
``fires/tick`` how many Fire instructions a tick returned on average, ``us/fire`` the
tick time divided by them. ``MiB`` is what tracemalloc counts as still allocated after
making and registering the schedules (a separate, untimed pass): the Schedule objects
and the book together.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import random
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from _table import format_table

from actorwork.clock import ManualClock
from actorwork.scheduler.cron import Cron
from actorwork.scheduler.cron_state import Fire, ScheduleBook
from actorwork.scheduler.state import Now, SchedulerState, SetFence
from actorwork.schedules import Schedule, schedule
from actorwork.stores.sqlite import SQLiteStore
from actorwork.work import Work, WorkRegistry

START = datetime(2025, 10, 25, 22, tzinfo=UTC)  # crosses the autumn change in London and NY
ZONES = ("UTC", "Europe/London", "America/New_York")


def spread(count: int, rng: random.Random) -> list[Schedule]:
    made = []
    for i in range(count):
        minute, hour = rng.randrange(60), rng.randrange(24)
        cron = f"{minute} {hour} * * *" if i % 2 else f"{minute} * * * *"
        made.append(schedule(f"s{i}", "bench.noop", cron, timezone=ZONES[i % 3]))
    return made


def burst(count: int, rng: random.Random) -> list[Schedule]:
    return [
        schedule(f"s{i}", "bench.noop", "* * * * *", timezone=ZONES[i % 3]) for i in range(count)
    ]


def idle_ticks(book: ScheduleBook, clock: ManualClock) -> list[datetime]:
    """Ten ticks a second apart, all before the earliest due fire time."""
    first = book.next_due() or clock.wall() + timedelta(hours=1)
    return [first - timedelta(seconds=20 - k) for k in range(10)]


def minute_ticks(minutes: int) -> Callable[[ScheduleBook, ManualClock], list[datetime]]:
    def ticks(book: ScheduleBook, clock: ManualClock) -> list[datetime]:
        return [clock.wall() + timedelta(minutes=m, seconds=1) for m in range(1, minutes + 1)]

    return ticks


WORKLOADS: list[
    tuple[str, Callable[[int, random.Random], list[Schedule]], Callable[..., list[datetime]]]
] = [
    ("idle", spread, idle_ticks),
    ("spread", spread, minute_ticks(120)),
    ("burst", burst, minute_ticks(3)),
]


def memory(make: Callable[[int, random.Random], list[Schedule]], count: int, seed: int) -> int:
    """Bytes still allocated after making ``count`` schedules and registering them."""
    gc.collect()
    tracemalloc.start()
    try:
        schedules = make(count, random.Random(seed))
        book = ScheduleBook()
        for s in schedules:
            book.register(s, START)
        gc.collect()
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del book, schedules
    return current


def timed(
    schedules: list[Schedule], pick_ticks: Callable[..., list[datetime]]
) -> tuple[float, float, float]:
    """(seconds to register all, mean seconds per tick, Fire instructions per tick)."""
    clock = ManualClock(wall=START)
    book = ScheduleBook()
    started = time.perf_counter()
    for s in schedules:
        book.register(s, clock.wall())
    registered = time.perf_counter() - started
    ticks = pick_ticks(book, clock)
    fired = 0
    elapsed = 0.0
    for now in ticks:
        started = time.perf_counter()
        decided = book.tick(now)
        elapsed += time.perf_counter() - started
        fired += sum(isinstance(i, Fire) for i in decided)
    return registered, elapsed / len(ticks), fired / len(ticks)


def dispatched(commit: bool) -> Callable[[list[Schedule]], tuple[float, float, float]]:
    """Like :func:`timed` on minute ticks, through Cron into a SchedulerState (and a store)."""

    def run(schedules: list[Schedule]) -> tuple[float, float, float]:
        return asyncio.run(_dispatched(schedules, commit))

    return run


async def _dispatched(schedules: list[Schedule], commit: bool) -> tuple[float, float, float]:
    registry = WorkRegistry()
    registry.register(Work(name="bench.noop", func=_noop, is_async=True))
    state = SchedulerState(lease=30.0)
    cron = Cron(registry, state.submit, state.next_seq)
    wall = START.timestamp()
    state.pool_ready("p", ("default",), 10**9, [], Now(0.0, wall))
    started = time.perf_counter()
    cron.load([], schedules, [], Now(0.0, wall))
    registered = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(f"{tmp}/jobs.db")
        await store.open()
        await store.apply(cron.load([], schedules, [], Now(0.0, wall)))  # the schedule rows
        elapsed, fired = 0.0, 0
        for minute in range(1, 4):
            now = Now(float(minute * 60), wall + minute * 60 + 1)
            started = time.perf_counter()
            effects = cron.tick(now)
            if commit:
                await store.apply(effects)
            elapsed += time.perf_counter() - started
            fired += sum(isinstance(e, SetFence) for e in effects)
            for job in list(state.jobs.values()):  # they ran: make room for the next tick
                state.jobs.pop(job.id)
                cron.finished(job.id)
        await store.aclose()
    return registered, elapsed / 3, fired / 3


async def _noop() -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    # The Scheduler logs every firing; what is timed here is the work, not the log.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=True,
    )

    rows = []
    for name, make, pick_ticks in WORKLOADS:
        schedules = make(args.schedules, random.Random(args.seed))
        best: dict[int, tuple[float, float, float]] = {}
        for _ in range(args.repeat):  # the book and the baseline take turns
            for subset in (schedules, []):
                result = timed(subset, pick_ticks)
                n = len(subset)
                best[n] = result if n not in best else tuple(map(min, best[n], result))  # type: ignore[assignment]
        for count in (len(schedules), 0):
            registered, per_tick, fires = best[count]
            per_fire = f"{per_tick / fires * 1e6:.1f}" if fires else "-"
            rows.append(
                [
                    name,
                    f"{count:,}",
                    f"{registered * 1e3:,.1f}",
                    f"{per_tick * 1e6:,.1f}",
                    f"{fires:,.1f}",
                    per_fire,
                    f"{memory(make, count, args.seed) / 2**20:.2f}",
                ]
            )
    for name, run in (
        ("burst, dispatched", dispatched(False)),
        ("burst, committed", dispatched(True)),
    ):
        schedules = burst(args.schedules, random.Random(args.seed))
        best_run = min((run(schedules) for _ in range(args.repeat)), key=lambda r: r[1])
        registered, per_tick, fires = best_run
        rows.append(
            [
                name,
                f"{len(schedules):,}",
                f"{registered * 1e3:,.1f}",
                f"{per_tick * 1e6:,.1f}",
                f"{fires:,.1f}",
                f"{per_tick / fires * 1e6:.1f}" if fires else "-",
                "",
            ]
        )
    notes = [
        f"best of {args.repeat}; ticks of a simulated wall clock from {START:%Y-%m-%d %H:%M} UTC",
        "MiB: tracemalloc, what making and registering the schedules left allocated",
    ]
    columns = [
        "workload",
        "schedules",
        "register ms",
        "us/tick",
        "fires/tick",
        "us/fire",
        "MiB",
    ]
    print(format_table(columns, rows, notes, numeric={1, 2, 3, 4, 5, 6}, markdown=args.markdown))


if __name__ == "__main__":
    main()
