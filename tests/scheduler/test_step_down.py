"""A Scheduler that cannot commit steps down: it never leads a store it does not serve.

F22's second half: before, an ``OverflowError`` from the store killed the commit task
while the lease renewals went on, so no standby took over and every later submit hung.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import anyio
import pytest

from actorwork import ActorSystem
from actorwork.errors import ActorNotFound, StoreError, StoreInUse
from actorwork.messages import AwaitJob, JobReply, SubmitJob, SubmittedReply
from actorwork.scheduler.actor import Scheduler
from actorwork.scheduler.leadership import holder_name, lead
from actorwork.stores import open_store
from actorwork.stores.sqlite import SQLiteStore
from tests.jobs import works
from tests.jobs.harness import eventually

NOOP = SubmitJob(work=works.noop.name, payload=b"\xc0")


class BrokenStore(SQLiteStore):
    """A SQLite store whose commits raise ``error`` once ``broken`` is set."""

    def __init__(self, path: Path, error: Exception) -> None:
        super().__init__(str(path))
        self.error = error
        self.broken = False
        self.attempts = 0

    async def apply(self, effects: Sequence[object]) -> None:
        if self.broken:
            self.attempts += 1
            raise self.error
        await super().apply(effects)


def _running(system: ActorSystem, name: str) -> bool:
    try:
        system.ref(name)
    except ActorNotFound:
        return False
    return True


async def _takes_over(path: Path) -> int:
    """The epoch a second Scheduler leads ``path`` with; StoreInUse if it cannot now."""
    store = open_store(str(path))
    await store.open()
    try:
        return await lead(store, lease=10, holder=holder_name(), wait=False)
    finally:
        await store.aclose()


@pytest.mark.parametrize(
    "error",
    [
        OverflowError("Python int too large to convert to SQLite INTEGER"),
        RuntimeError("a bug in the store"),
    ],
    ids=["overflow", "bug"],
)
async def test_a_commit_that_raises_steps_the_scheduler_down(
    tmp_path: Path, error: Exception
) -> None:
    path = tmp_path / "jobs.db"
    store = BrokenStore(path, error)
    scheduler = Scheduler(store=store, modules=["tests.jobs.works"], tick=0.01)
    async with ActorSystem("shell") as system:
        ref = await system.spawn(scheduler, name="scheduler")
        first = await ref.ask(NOOP)
        assert isinstance(first, SubmittedReply)
        waiting: list[BaseException] = []

        async def wait_for_first() -> None:
            try:
                await ref.ask(AwaitJob(first.job_id, wait=600.0), timeout=60)
            except BaseException as exc:
                waiting.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_for_first)
            await eventually(lambda: len(scheduler._waiters) == 1, "the wait registered")
            store.broken = True
            # The ask that waited for the failed commit is answered, not left to time out.
            with pytest.raises(StoreError, match=r"stepped down.*could not commit"):
                await ref.ask(NOOP, timeout=10)
        assert scheduler.deposed.is_set()
        assert type(error).__name__ in scheduler.deposed_reason
        assert len(waiting) == 1
        assert isinstance(waiting[0], StoreError)
        # It stops, and gave up its lease: another Scheduler leads the store at once.
        await eventually(lambda: not _running(system, "scheduler"), "the Scheduler stopped")
        assert await _takes_over(path) == 2
        assert store.attempts == 1  # a commit that cannot work is not retried


async def test_a_store_error_that_outlasts_the_leader_lease_steps_down(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    store = BrokenStore(path, StoreError("disk I/O error"))
    scheduler = Scheduler(store=store, modules=["tests.jobs.works"], tick=0.01, leader_lease=0.5)
    async with ActorSystem("shell") as system:
        ref = await system.spawn(scheduler, name="scheduler")
        store.broken = True
        with pytest.raises(StoreError, match=r"stepped down.*disk I/O error"):
            await ref.ask(NOOP, timeout=10)
        assert store.attempts > 1  # retried first: a full disk may free up
        assert scheduler.deposed.is_set()
        assert await _takes_over(path) == 2


async def test_a_store_error_that_passes_is_retried_and_the_submit_answered(
    tmp_path: Path,
) -> None:
    store = BrokenStore(tmp_path / "jobs.db", StoreError("database is locked"))
    scheduler = Scheduler(store=store, modules=["tests.jobs.works"], tick=0.01)
    async with ActorSystem("shell") as system:
        ref = await system.spawn(scheduler, name="scheduler")
        store.broken = True
        async with anyio.create_task_group() as tg:

            async def heal() -> None:
                await eventually(lambda: store.attempts >= 2, "two failed commits")
                store.broken = False

            tg.start_soon(heal)
            reply = await ref.ask(NOOP, timeout=10)
        assert isinstance(reply, SubmittedReply)
        assert not scheduler.deposed.is_set()
        done = await ref.ask(AwaitJob(reply.job_id, wait=0))
        assert isinstance(done, JobReply)
        assert done.job is not None
        with pytest.raises(StoreInUse):
            await _takes_over(tmp_path / "jobs.db")


async def test_a_leader_that_cannot_renew_its_lease_in_time_steps_down(tmp_path: Path) -> None:
    """An idle leader whose store stays locked (another connection holds SQLite's write
    lock, a real lock) commits nothing, so only its renewals fail: past its lease by its
    own clock it steps down, before a standby may lead."""
    path = tmp_path / "jobs.db"
    scheduler = Scheduler(store=str(path), modules=["tests.jobs.works"], leader_lease=0.5)
    async with ActorSystem("shell") as system:
        await system.spawn(scheduler, name="scheduler")
        locker = sqlite3.connect(path, isolation_level=None)
        try:
            locker.execute("BEGIN EXCLUSIVE")
            await eventually(scheduler.deposed.is_set, "the Scheduler to step down")
            assert "not renewed within leader_lease=0.5 s" in scheduler.deposed_reason
            await eventually(lambda: not _running(system, "scheduler"), "the Scheduler stopped")
        finally:
            locker.execute("ROLLBACK")
            locker.close()
