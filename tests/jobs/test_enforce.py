"""Cancel and timeout are enforced, not only requested (issue 11 item 6, RELIABILITY.md F27).

Real works (``tests.jobs.works``: ``hold_async``, ``hold_sync``, ``mark``) that never
check in, run through an inline JobSystem (``local`` and ``thread`` pools) and a
``local`` one with a ``process`` pool. Each asserts what happened, in the order the
works wrote it to their history file: a ``finally`` that ran, a job that did not start
while a thread still ran, a process id that changed. Waits poll up to a generous
deadline; nothing asserts on speed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import msgspec
import pytest

from actorwork import Actor, ActorRef, ActorSystem, JobSystem
from actorwork.clock import Now
from actorwork.config import Config, load_config
from actorwork.messages import (
    JobKey,
    JobProgressed,
    JobSpec,
    PoolHeartbeat,
    PoolReady,
    ReportResult,
    ReportResults,
    RequestWork,
    ResultsAcknowledged,
    RunJob,
    WorkResult,
)
from actorwork.pool.actor import Pool
from actorwork.pool.state import Attempt, PoolState
from actorwork.work import WorkContext
from tests.jobs.works import Hold

DEADLINE = 60.0  # a bound for liveness, never a measure of speed


async def eventually(condition: Callable[[], Any], what: str) -> Any:
    """Poll ``condition`` until it returns something truthy."""
    end = time.monotonic() + DEADLINE
    while not (value := condition()):
        if time.monotonic() > end:
            raise AssertionError(f"gave up after {DEADLINE:g} s waiting for {what}")
        await anyio.sleep(0.02)
    return value


def events(history: Path, job_id: str | None = None) -> list[tuple[str, str]]:
    """``(event, job_id)`` per line the works appended, of one job or of all."""
    if not history.exists():
        return []
    lines = [line.split() for line in history.read_text().splitlines()]
    return [(e, j) for e, j, _, _ in lines if job_id is None or j == job_id]


def pids(history: Path, job_id: str) -> list[int]:
    """The process ids of ``job_id``'s lines."""
    lines = [line.split() for line in history.read_text().splitlines()]
    return [int(pid) for _, j, _, pid in lines if j == job_id]


def gone(pid: int) -> bool:
    """True when no process ``pid`` exists (nor its zombie: it was reaped)."""
    return not Path(f"/proc/{pid}").exists()


def _config(tmp_path: Path, kind: str) -> Config:
    """One Scheduler and a Pool ``main`` of one worker of ``kind``, in this process."""
    path = tmp_path / "actorwork.toml"
    path.write_text(
        f"""
[jobs]
topology = "{"local" if kind == "process" else "inline"}"
modules = ["tests.jobs.works"]

[scheduler]
address = "inproc://enforce-{tmp_path.name}"
store = "{tmp_path}/jobs.db"
lease = 10.0

[pools.main]
kind = "{kind}"
size = 1
outbox = "{tmp_path}/outbox"
heartbeat = 1.0
"""
    )
    return load_config(path, env={})


@pytest.fixture(params=["local", "thread", "process"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --- async work: cancelled after the grace ----------------------------------------------


async def test_async_work_that_ignores_a_cancel_is_cancelled_after_the_grace(
    kind: str, tmp_path: Path
) -> None:
    history = tmp_path / "history"
    async with JobSystem(_config(tmp_path, kind)) as jobs:
        handle = await jobs.submit("hold_async", Hold(history=str(history)))
        await eventually(lambda: events(history, handle.id), "the work to start")
        assert (await handle.cancel()).status == "cancelled"
        # Its task was cancelled: the work's ``finally`` ran, in the process it ran in.
        await eventually(lambda: len(events(history, handle.id)) == 2, "the work's finally")
        assert events(history, handle.id) == [("start", handle.id), ("finally", handle.id)]
        # The only worker is free again, and it is the same one (nothing was killed).
        after = await jobs.submit("mark", str(history))
        assert await after.result(timeout=DEADLINE) == pids(history, handle.id)[0]


async def test_async_work_that_ignores_its_timeout_is_cancelled_after_the_grace(
    kind: str, tmp_path: Path
) -> None:
    history = tmp_path / "history"
    async with JobSystem(_config(tmp_path, kind)) as jobs:
        handle = await jobs.submit("hold_async", Hold(history=str(history)), timeout=0.3)
        view = await handle.wait(timeout=DEADLINE)
        assert (view.status, view.error) == ("dead", "timed out after 0.3 s")
        await eventually(lambda: len(events(history, handle.id)) == 2, "the work's finally")
        assert events(history, handle.id) == [("start", handle.id), ("finally", handle.id)]
        after = await jobs.submit("mark", str(history))
        assert await after.result(timeout=DEADLINE) == pids(history, handle.id)[0]


async def test_async_work_past_its_timeout_may_still_stop_by_itself_within_the_grace(
    kind: str, tmp_path: Path
) -> None:
    """The timeout first asks (``checkin()`` says True); only the grace's end cancels."""
    from tests.jobs.works import Step

    history = tmp_path / "history"
    async with JobSystem(_config(tmp_path, kind)) as jobs:
        handle = await jobs.submit(
            "traced", Step(history=str(history), seconds=3600.0), timeout=0.3, retries=0
        )
        view = await handle.wait(timeout=DEADLINE)
        assert (view.status, view.error) == ("dead", "timed out after 0.3 s")
        await eventually(lambda: len(events(history, handle.id)) == 2, "the work's last line")
        assert events(history, handle.id) == [("start", handle.id), ("stopped", handle.id)]


# --- sync work: its thread keeps its slot busy ------------------------------------------


@pytest.mark.parametrize("kind", ["local", "thread"])
async def test_sync_work_past_its_timeout_keeps_its_worker_busy_until_its_thread_returns(
    kind: str, tmp_path: Path
) -> None:
    history, gate = tmp_path / "history", tmp_path / "gate"
    try:
        async with JobSystem(_config(tmp_path, kind)) as jobs:
            hold = Hold(history=str(history), gate=str(gate))
            first = await jobs.submit("hold_sync", hold, timeout=0.3)
            second = await jobs.submit("mark", str(history))
            view = await first.wait(timeout=DEADLINE)
            assert (view.status, view.error) == ("dead", "timed out after 0.3 s")
            # The attempt is over but its thread still runs: the pool's only slot stays
            # busy, so the next job was not handed out.
            assert await second.status() == "queued"
            assert events(history) == [("start", first.id)]
            gate.touch()
            assert await second.result(timeout=DEADLINE) == os.getpid()
            assert events(history) == [
                ("start", first.id),
                ("end", first.id),
                ("start", second.id),
            ]
    finally:
        gate.touch()  # a failed test leaves no thread behind to hold up the exit


class _Scheduler(Actor):
    """Stands in for the Scheduler: records what the Pool says, acknowledges results."""

    def __init__(self) -> None:
        self.seen: list[PoolReady | RequestWork | PoolHeartbeat | WorkResult] = []
        self.pool: ActorRef | None = None

    async def receive(
        self,
        message: PoolReady
        | RequestWork
        | PoolHeartbeat
        | ReportResult
        | ReportResults
        | JobProgressed,
    ) -> None:
        match message:
            case ReportResult(result=result):
                await self._acknowledge([result])
            case ReportResults(results=results):
                await self._acknowledge(results)
            case PoolReady() | RequestWork() | PoolHeartbeat():
                self.seen.append(message)
            case JobProgressed():
                pass

    async def _acknowledge(self, results: list[WorkResult]) -> None:
        self.seen.extend(results)
        assert self.pool is not None
        await self.pool.tell(ResultsAcknowledged([r.key for r in results]))

    def credit(self) -> int:
        """The slots the Pool offered since it last introduced itself."""
        offered = 0
        for message in self.seen:
            if isinstance(message, PoolReady):
                offered = message.free
            elif isinstance(message, RequestWork):
                offered += message.slots
        return offered

    def beats(self) -> list[PoolHeartbeat]:
        return [m for m in self.seen if isinstance(m, PoolHeartbeat)]


@pytest.mark.parametrize("kind", ["local", "thread"])
async def test_the_pool_reports_an_overrunning_thread_and_offers_its_slot_only_when_it_returns(
    kind: str, tmp_path: Path
) -> None:
    history, gate = tmp_path / "history", tmp_path / "gate"
    key = JobKey("j1", 1)
    payload = msgspec.msgpack.encode(Hold(history=str(history), gate=str(gate)))
    spec = JobSpec(id="j1", work="hold_sync", payload=payload, attempt=1, timeout=0.2)
    try:
        async with ActorSystem("enforce") as system:
            scheduler = _Scheduler()
            pool = Pool(
                scheduler=await system.spawn(scheduler, name="scheduler"),
                outbox=tmp_path / "outbox",
                kind=kind,  # type: ignore[arg-type]
                size=1,
                modules=["tests.jobs.works"],
                heartbeat=0.2,
                fsync=False,
            )
            scheduler.pool = await system.spawn(pool, name="p")
            await eventually(lambda: scheduler.credit() == 1, "the pool's one free slot")
            await scheduler.pool.tell(RunJob(spec, lease=60.0))
            ended = await eventually(
                lambda: [m for m in scheduler.seen if isinstance(m, WorkResult)], "a result"
            )
            assert [(r.key, r.outcome) for r in ended] == [(key, "timeout")]
            # The thread still runs: heartbeats say so, and no slot is offered for it.
            await eventually(
                lambda: any(b.overrunning == [key] for b in scheduler.beats()),
                "a heartbeat naming the overrunning attempt",
            )
            assert scheduler.credit() == 1  # the slot j1 took, and no more
            assert pool.state.free == 0
            gate.touch()
            await eventually(lambda: scheduler.credit() == 2, "the slot offered again")
            beats = len(scheduler.beats())
            await eventually(lambda: len(scheduler.beats()) > beats, "a later heartbeat")
            assert scheduler.beats()[-1].overrunning == []
            assert events(history) == [("start", "j1"), ("end", "j1")]
    finally:
        gate.touch()


# --- process workers: killed and replaced -----------------------------------------------


@pytest.mark.parametrize("how", ["timeout", "cancel"])
async def test_a_process_worker_whose_sync_work_overruns_is_killed_and_replaced(
    how: str, tmp_path: Path
) -> None:
    history = tmp_path / "history"
    async with JobSystem(_config(tmp_path, "process")) as jobs:
        options = {"timeout": 0.3} if how == "timeout" else {}
        first = await jobs.submit("hold_sync", Hold(history=str(history)), **options)
        await eventually(lambda: events(history, first.id), "the work to start")
        if how == "cancel":
            await first.cancel()
        status = (await first.wait(timeout=DEADLINE)).status
        assert status == ("dead" if how == "timeout" else "cancelled")
        # The pool's only worker ran the next job in a new process; the old one is gone
        # and its thread never came to its end.
        [started] = pids(history, first.id)
        after = await jobs.submit("mark", str(history))
        assert await after.result(timeout=DEADLINE) != started
        assert gone(started)
        assert events(history, first.id) == [("start", first.id)]


async def test_a_process_worker_whose_async_work_blocks_its_loop_is_killed_after_a_cancel(
    tmp_path: Path,
) -> None:
    history = tmp_path / "history"
    async with JobSystem(_config(tmp_path, "process")) as jobs:
        first = await jobs.submit("hold_async", Hold(history=str(history), seconds=3600.0))
        await eventually(lambda: events(history, first.id), "the work to start")
        assert (await first.cancel()).status == "cancelled"
        [started] = pids(history, first.id)
        after = await jobs.submit("mark", str(history))
        assert await after.result(timeout=DEADLINE) != started
        assert events(history, first.id) == [("start", first.id)]  # killed: no finally


# --- the pieces ---------------------------------------------------------------------------


def test_a_stop_callback_runs_once_and_at_once_when_the_stop_came_first() -> None:
    ctx = WorkContext(job_id="j", attempt=1, work="w", queue="default")
    calls: list[str] = []
    ctx.when_stopped(lambda: calls.append("early"))
    ctx.request_stop("cancelled")
    ctx.request_stop("timed out")  # only the first request counts
    ctx.when_stopped(lambda: calls.append("late"))
    assert (ctx.stop_reason, calls) == ("cancelled", ["early", "late"])


def test_an_overrunning_worker_is_neither_idle_nor_running_until_freed() -> None:
    state = PoolState(name="p")
    state.add_worker("w0")
    spec = JobSpec(id="a", work="w", payload=b"\xc0", attempt=1, timeout=1.0)
    attempt = state.assign(spec, now=Now(0.0, 0.0))
    assert isinstance(attempt, Attempt)
    timed_out = WorkResult(job_id="a", attempt=1, outcome="timeout", worker="w0")
    assert state.overran(timed_out) == attempt
    assert (state.free, state.running, state.overrunning) == (0, {}, {"w0": JobKey("a", 1)})
    assert not state.freed("w0", JobKey("a", 2))  # not the attempt it overruns
    assert state.freed("w0", JobKey("a", 1))
    assert not state.freed("w0", JobKey("a", 1))  # once
    assert (state.free, state.overrunning) == (1, {})


def test_a_worker_overrunning_a_handed_back_attempt_is_held_busy_and_a_removed_one_forgotten() -> (
    None
):
    state = PoolState(name="p")
    state.add_worker("w0")
    state.assign(JobSpec(id="a", work="w", payload=b"\xc0", attempt=1), now=Now(0.0, 0.0))
    state.hand_back(now=Now(1.0, 1.0))  # the pool stops: the attempt is reported returned
    assert state.free == 1
    late = WorkResult(job_id="a", attempt=1, outcome="cancelled", worker="w0")
    assert state.overran(late) is None  # its result is dropped, its worker held busy
    assert (state.free, state.overrunning) == (0, {"w0": JobKey("a", 1)})
    state.remove_worker("w0")  # a killed process worker
    assert (state.free, state.overrunning) == (0, {})


# --- the enforcement's own cancellation, on the worker's task ---------------------------


async def _attempt_stopped_after(started: anyio.Event, work: str, registry: Any) -> WorkResult:
    """Run ``work`` as an attempt with no grace; ask it to stop once it started."""
    from actorwork.worker import run_attempt

    contexts: list[WorkContext] = []
    spec = JobSpec(id="j1", work=work, payload=msgspec.msgpack.encode(None), attempt=1)
    async with anyio.create_task_group() as tg:

        async def stop() -> None:
            await started.wait()
            contexts[0].request_stop("cancelled")

        tg.start_soon(stop)
        return await run_attempt(spec, registry=registry, grace=0.0, on_context=contexts.append)
    raise AssertionError("unreachable")


async def test_an_enforced_cancel_the_work_swallows_leaves_the_worker_task_uncancelled() -> None:
    """The work catches the cancellation and returns: the attempt is cancelled, and the
    worker's task carries no cancellation left over into its next await."""
    import asyncio

    from actorwork.work import WorkRegistry, work

    registry = WorkRegistry()
    started = anyio.Event()

    @work(name="swallow", registry=registry)
    async def swallow(ctx: WorkContext) -> str:
        started.set()
        try:
            await anyio.sleep_forever()
        except BaseException:  # what this work is about
            return "swallowed"
        return "unreachable"

    result = await _attempt_stopped_after(started, "swallow", registry)
    assert result.outcome == "cancelled"
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
    await anyio.lowlevel.checkpoint()  # would raise CancelledError if one were pending


async def test_a_cancellation_from_outside_an_attempt_asked_to_stop_still_propagates() -> None:
    """A stopping Pool cancels its worker while the enforcement's own cancel is due:
    the outer cancellation is not taken for the enforcement's and swallowed."""
    from actorwork.work import WorkRegistry, work

    registry = WorkRegistry()
    started = anyio.Event()
    finished: list[str] = []

    @work(name="hold", registry=registry)
    async def hold(ctx: WorkContext) -> None:
        started.set()
        try:
            await anyio.sleep_forever()
        finally:
            finished.append("finally")

    with anyio.CancelScope() as outer:

        async def cancel_outer() -> None:
            await started.wait()
            outer.cancel()

        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_outer)
            await _attempt_stopped_after(started, "hold", registry)
    assert outer.cancelled_caught
    assert finished == ["finally"]
