"""The Pool actor reads time only from the clock it is given.

A stand-in Scheduler in the same actor system records what the Pool reports. The
Pool's clock is a :class:`ManualClock` the test moves, so what the Pool decides by the
clock happens when the test says, never because real time passed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import anyio
import msgspec

from actorwork.clock import ManualClock, Now
from actorwork.messages import DrainPool, JobSpec, Message, ReportResults, RunJob, WorkResult
from actorwork.pool.actor import Pool, PoolKind
from actorwork.runtime import Actor, ActorSystem
from tests.jobs.harness import eventually

#: A bound for liveness only: a Pool that waits for real time instead of its clock.
HANG = 60.0


class StandInScheduler(Actor):
    """Takes every message the Pool sends; keeps the results it reports."""

    def __init__(self) -> None:
        self.results: list[WorkResult] = []

    async def receive(self, message: Message) -> None:
        if isinstance(message, ReportResults):
            self.results.extend(message.results)

    def result_of(self, job_id: str) -> WorkResult | None:
        return next((r for r in self.results if r.job_id == job_id), None)


@asynccontextmanager
async def running_pool(
    tmp_path: Path, clock: ManualClock, *, kind: PoolKind = "local", size: int = 1
) -> AsyncIterator[tuple[Pool, StandInScheduler]]:
    async with ActorSystem("pool-test") as system:
        scheduler = StandInScheduler()
        ref = await system.spawn(scheduler, name="scheduler")
        pool = Pool(
            scheduler=ref,
            outbox=tmp_path / "outbox",
            kind=kind,
            size=size,
            modules=["tests.jobs.works"],
            fsync=False,
            clock=lambda: Now.read(clock),
        )
        await system.spawn(pool, name="pool")
        yield pool, scheduler


def job(job_id: str, work: str, payload: object, timeout: float | None = None) -> RunJob:
    data = msgspec.msgpack.encode(payload)
    spec = JobSpec(id=job_id, work=work, payload=data, attempt=1, timeout=timeout)
    return RunJob(spec, lease=30.0)


def result_of(scheduler: StandInScheduler, job_id: str) -> Callable[[], WorkResult | None]:
    return lambda: scheduler.result_of(job_id)


async def test_a_drain_counts_its_grace_and_stamps_results_on_the_pools_clock(
    tmp_path: Path,
) -> None:
    """A drain's grace runs out on the Pool's clock, not in real seconds; the attempt it
    hands back carries the clock's wall readings."""
    clock = ManualClock(monotonic=1000.0, wall=datetime(2031, 5, 4, 12, 0, tzinfo=UTC))
    began = clock.wall().timestamp()
    async with running_pool(tmp_path, clock) as (pool, scheduler):
        await pool.ref.tell(job("a", "sleep", 600.0))
        await eventually(lambda: pool.state.running, "the job running")
        clock.advance(42.0)
        await pool.ref.tell(DrainPool(300.0))
        await eventually(lambda: pool.draining, "the drain begun")
        assert pool.state.running  # the clock stands still: the grace has not run out
        clock.advance(300.0)
        await pool.ref.tell(DrainPool(3600.0))  # a later end changes nothing; the Pool looks
        returned = await eventually(result_of(scheduler, "a"), "the job handed back")
    assert returned.outcome == "returned"
    assert (returned.started, returned.finished) == (began, began + 342.0)


async def test_a_process_worker_past_its_timeout_on_the_pools_clock_is_killed(
    tmp_path: Path,
) -> None:
    """A worker whose attempt overran its timeout by the Pool's clock is killed, and
    the attempt reported lost; no real second of the timeout has to pass."""
    clock = ManualClock(monotonic=0.0)
    with anyio.fail_after(HANG):
        async with running_pool(tmp_path, clock, kind="process", size=2) as (pool, scheduler):
            await pool.ref.tell(job("stuck", "block", 600.0, timeout=100.0))
            await eventually(lambda: pool.state.running, "the job running")
            clock.advance(111.0)  # past the timeout plus a tenth of it
            # Any attempt with a timeout makes the Pool look at its deadlines again.
            await pool.ref.tell(job("next", "add", {"x": 1, "y": 2}, timeout=100.0))
            lost = await eventually(result_of(scheduler, "stuck"), "the stuck job lost")
            done = await eventually(result_of(scheduler, "next"), "the next job done")
    assert lost.outcome == "lost"
    assert "without a result" in (lost.error or "")
    assert done.outcome == "succeeded"
