"""An inline job system for testing your own work: a temporary store and a manual clock.

::

    async with job_system() as jobs:
        handle = await jobs.submit(send_reminder, 42, delay=300)
        await jobs.advance(299)                     # nothing runs yet
        assert await handle.status() == "scheduled"
        await jobs.advance(1)                       # due now: it runs, and is awaited
        assert await handle.result() == "sent"

:func:`job_system` runs the Scheduler and the Pools of a configuration (the defaults,
or yours) in this process over ``inproc://``, on a store and outboxes in a directory
of their own that is deleted afterwards. The pytest fixtures of
:mod:`actorwork.testing.pytest_plugin` (``actorwork_jobs``, ``actorwork_clock``)
give you one per test.

The clock. The Scheduler and the Pools read the calendar from a
:class:`~actorwork.clock.ManualClock`, which stands still until the test moves it:
due times (``delay``, ``at``), retry backoff and cron fire times follow it, so a job
delayed a day runs as soon as the test advances the clock a day, without sleeping.
What measures how long something lasts stays real: leases, heartbeats, a job's
``timeout``, the Scheduler's tick (every 50 ms) — so advancing the calendar never
makes a running job look lost, and a work that sleeps still sleeps (a result's
``started`` and ``finished``, stamped by the worker, are real times too). Compute times
from ``jobs.clock.wall()``, not ``datetime.now()``: the test's calendar starts at
2025-01-01 00:00 UTC unless the clock you pass says otherwise.

Waiting. :meth:`InlineJobs.run_until_idle` returns once nothing more happens
without the clock moving: no job is queued or running, none is due, no cron fire
time has come unanswered. :meth:`InlineJobs.advance` moves the clock and then waits
so; after it, a test asserts what ran.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio
import msgspec

from actorwork.client import Client, JobHandle
from actorwork.clock import Clock, ManualClock, Now
from actorwork.config import Config
from actorwork.errors import UsageError
from actorwork.messages import TERMINAL, JobView, ScheduleView
from actorwork.schedules import next_fire_times
from actorwork.topology import JobSystem

__all__ = ["InlineJobs", "calendar_now", "hosted", "inline_config", "job_system", "pending"]

T = TypeVar("T")

#: How often :meth:`InlineJobs.run_until_idle` looks again (real seconds).
_POLL = 0.01


def calendar_now(clock: Clock) -> Callable[[], Now]:
    """The job system's clock under test: ``clock``'s calendar, real monotonic time.

    Each reading is a :class:`~actorwork.clock.Now` with ``wall`` from ``clock`` and
    ``mono`` from :func:`time.monotonic`: the calendar is the test's, durations
    (leases, heartbeats, timeouts) are real.
    """

    def now() -> Now:
        return Now(time.monotonic(), clock.wall().timestamp())

    return now


def pending(jobs: Iterable[JobView], schedules: Iterable[ScheduleView], wall: float) -> list[str]:
    """What will still happen at calendar time ``wall`` without the clock moving.

    A job that is queued or running, or scheduled or retrying with its due time come;
    an enabled schedule with a fire time after its fence and not after ``wall`` that
    no firing waits on. Each is described for a person; empty means idle. Pure.
    """
    found: list[str] = []
    for view in schedules:
        schedule = view.schedule
        if not schedule.enabled or view.waiting:
            continue  # a held firing waits for a live job, which is listed itself
        fence = datetime.fromtimestamp(view.fence, UTC)
        upcoming = next_fire_times(schedule, fence, 1)
        if upcoming and upcoming[0].timestamp() <= wall:
            found.append(f"schedule {schedule.name!r} fires at {upcoming[0].isoformat()}")
    for job in jobs:
        if job.status in TERMINAL:
            continue
        if job.status in ("queued", "running"):
            found.append(f"job {job.id!r} ({job.work}) is {job.status} on queue {job.queue!r}")
        elif job.due is None or job.due <= wall:
            found.append(f"job {job.id!r} ({job.work}) is {job.status} and due")
    return found


class InlineJobs:
    """A running job system under test; made by :func:`job_system`.

    ``clock`` is the test's calendar, ``directory`` holds the store (``store``) and
    the Pools' outboxes, ``system`` is the :class:`~actorwork.topology.JobSystem`
    and ``client`` its :class:`~actorwork.client.Client`, for everything else
    (``get``, ``list``, ``attempts``, ``add_schedule``, ``cancel`` ...).
    """

    def __init__(self, system: JobSystem, clock: ManualClock, directory: Path) -> None:
        self.system = system
        self.clock = clock
        self.directory = directory

    @property
    def client(self) -> Client:
        """The client of the running system."""
        client = self.system.client
        if client is None:
            raise RuntimeError("the job system under test is not running")
        return client

    @property
    def store(self) -> Path:
        """The SQLite file of the Scheduler's store."""
        return Path(self.system.config.scheduler.store)

    async def submit(
        self,
        work: Any,
        payload: Any = None,
        *,
        delay: timedelta | float | None = None,
        **options: Any,
    ) -> JobHandle:
        """Submit as :meth:`Client.submit` does; ``delay`` counts from the test's clock."""
        if delay is not None and "at" not in options:
            seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
            if seconds >= 0:  # else the client refuses it, naming the value
                options["at"], delay = self.clock.wall() + timedelta(seconds=seconds), None
        return await self.client.submit(work, payload, delay=delay, **options)

    async def advance(self, seconds: float | timedelta) -> None:
        """Move the clock forward ``seconds``, then :meth:`run_until_idle`."""
        self.clock.advance(seconds)
        await self.run_until_idle()

    async def run_until_idle(self, *, timeout: float = 30.0) -> None:
        """Wait until nothing happens any more without the clock moving (see :func:`pending`).

        TimeoutError after ``timeout`` real seconds names what is still pending: a job
        that keeps running, or one queued where no pool takes its queue.
        """
        if not timeout > 0:
            raise UsageError(f"timeout must be a positive number of seconds, got {timeout!r}")
        deadline = time.monotonic() + timeout
        while True:
            # Schedules first: a firing between the two asks then shows as its job.
            schedules = await self.client.schedules(count=1)
            jobs = [view async for view in self.client.iter_jobs()]
            left = pending(jobs, schedules, self.clock.wall().timestamp())
            if not left:
                return
            if time.monotonic() >= deadline:
                pools = self.system.config.pools.values()
                served = ", ".join(sorted({queue for pool in pools for queue in pool.queues}))
                more = " ..." if len(left) > 5 else ""
                raise TimeoutError(
                    f"the job system was not idle after {timeout} s: {'; '.join(left[:5])}"
                    f"{more} (the pools take queues: {served})"
                )
            await anyio.sleep(_POLL)


def inline_config(base: Config, directory: Path, modules: Sequence[str] = ()) -> Config:
    """``base`` made to run in this process, on a store and outboxes in ``directory``.

    Its pools, queues, schedules, retry and retention settings stay; the topology
    becomes inline (local if a pool runs ``process`` workers) and the Scheduler gets
    an ``inproc://`` address of its own.
    """
    replace = msgspec.structs.replace
    processes = any(pool.kind in ("process", "docker") for pool in base.pools.values())
    jobs = replace(
        base.jobs,
        topology="local" if processes else "inline",
        modules=list(dict.fromkeys([*base.jobs.modules, *modules])),
    )
    scheduler = replace(
        base.scheduler,
        address=f"inproc://actorwork-test-{uuid.uuid4().hex[:12]}",
        store=str(directory / "jobs.db"),
    )
    pools = {
        name: replace(pool, outbox=str(directory / "outbox" / name))
        for name, pool in base.pools.items()
    }
    return replace(
        base,
        jobs=jobs,
        scheduler=scheduler,
        pools=pools,
        system=replace(base.system, listen=""),
        source=f"{base.source} (inline, for tests, in {directory})",
    )


@asynccontextmanager
async def job_system(
    modules: Sequence[str] = (),
    *,
    config: Config | None = None,
    clock: ManualClock | None = None,
) -> AsyncIterator[InlineJobs]:
    """Run ``config`` (the defaults if None) inline, on a temporary store, by ``clock``.

    ``modules`` are imported so their works are known (works defined in the test's
    own module, or imported by it, need none). ``clock`` defaults to a
    :class:`~actorwork.clock.ManualClock` at 2025-01-01 00:00 UTC. The store, the
    outboxes and their directory are deleted when the block ends; the pools stop
    first, letting running jobs finish within their grace.
    """
    clock = ManualClock() if clock is None else clock
    with tempfile.TemporaryDirectory(prefix="actorwork-test-") as name:
        directory = Path(name)
        settings = inline_config(config or Config(), directory, modules)
        async with JobSystem(settings, clock=calendar_now(clock)) as system:
            yield InlineJobs(system, clock, directory)


@asynccontextmanager
async def hosted(manager: AbstractAsyncContextManager[T]) -> AsyncIterator[T]:
    """Enter and leave ``manager`` in a task of its own, held open while this block runs.

    pytest-asyncio sets an async fixture up in one task and tears it down in another,
    and a job system's task groups must be left by the task that entered them. The
    hosting task is the one task of this module not owned by a task group: its owner,
    the fixture, spans two tasks. An error of ``manager`` on entry is raised here; one
    on exit is raised when this block ends.
    """
    entered: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    leave = asyncio.Event()

    async def host() -> None:
        try:
            async with manager as value:
                if not entered.done():  # else whoever waited gave up: leave at once
                    entered.set_result(value)
                await leave.wait()
        except Exception as exc:
            if entered.done():
                raise
            entered.set_exception(exc)

    task = asyncio.create_task(host())
    try:
        yield await entered
    finally:
        leave.set()
        await task
