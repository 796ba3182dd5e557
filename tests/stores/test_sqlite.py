"""The job store: where its commits run, and what they do under a held write lock."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import anyio
import pytest

from actorwork.scheduler.state import Job, Persist
from actorwork.stores.base import SetPaused
from actorwork.stores.sqlite import SCHEMA_VERSION, SQLiteStore


def _job(job_id: str, seq: int) -> Job:
    return Job(
        id=job_id,
        work="noop",
        queue="default",
        priority=0,
        payload=b"\xc0",
        status="queued",
        attempt=0,
        max_attempts=1,
        created=0.0,
        updated=0.0,
        seq=seq,
    )


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = SQLiteStore(tmp_path / "jobs.db")
    await store.open()
    yield store
    await store.aclose()


def _block_store_thread(store: SQLiteStore) -> threading.Event:
    """Occupy the store's own thread until the returned event is set."""
    release = threading.Event()
    store._thread.submit(release.wait)
    return release


async def test_a_small_commit_does_not_wait_for_the_store_thread(store: SQLiteStore) -> None:
    release = _block_store_thread(store)
    try:
        with anyio.fail_after(30):
            await store.apply([Persist(_job("a", 1))])
    finally:
        release.set()
    assert (await store.get("a")) is not None


async def test_a_large_commit_runs_on_the_store_thread(store: SQLiteStore) -> None:
    release = _block_store_thread(store)
    done = anyio.Event()

    async def commit() -> None:
        await store.apply([Persist(_job(f"j{i}", i)) for i in range(100)])
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(commit)
        await anyio.sleep(0.2)
        assert not done.is_set()  # queued behind the blocked thread
        release.set()
    assert len(await store.find(status=None, queue=None, limit=1000)) == 100


async def test_a_held_write_lock_hands_the_commit_to_the_store_thread(
    store: SQLiteStore, tmp_path: Path
) -> None:
    """Another connection (a second Scheduler on the same file) holds the write lock:
    the commit neither fails nor blocks the event loop; it waits on the store thread."""
    other = sqlite3.connect(tmp_path / "jobs.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    done = anyio.Event()

    async def commit() -> None:
        await store.apply([Persist(_job("b", 1))])
        done.set()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(commit)
            await anyio.sleep(0.2)  # the loop still runs while the commit waits
            assert not done.is_set()
            other.execute("COMMIT")
    finally:
        other.close()
    assert (await store.get("b")) is not None


async def test_commits_that_fsync_stay_off_the_event_loop(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "jobs.db", synchronous="full")
    await store.open()
    try:
        release = _block_store_thread(store)
        done = anyio.Event()

        async def commit() -> None:
            await store.apply([Persist(_job("c", 1))])
            done.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(commit)
            await anyio.sleep(0.2)
            assert not done.is_set()
            release.set()
        assert (await store.get("c")) is not None
    finally:
        await store.aclose()


async def test_memory_store_commits_small_batches_too() -> None:
    store = SQLiteStore(":memory:")
    await store.open()
    try:
        await store.apply([Persist(_job("m", 1))])
        assert (await store.get("m")) is not None
    finally:
        await store.aclose()


async def test_a_file_of_schema_4_gains_job_contexts_and_paused_queues(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    old = SQLiteStore(path)
    await old.open()
    await old.apply([Persist(_job("old", 1))])
    await old.aclose()
    with sqlite3.connect(path) as db:  # as schema 4 wrote it
        db.execute("ALTER TABLE jobs DROP COLUMN context")
        db.execute("DROP TABLE paused_queues")
        db.execute("PRAGMA user_version=4")

    store = SQLiteStore(path)
    await store.open()
    try:
        job = await store.get("old")
        assert job is not None
        assert job.context == {}
        job.context = {"tenant": "acme"}
        await store.apply([Persist(job), SetPaused("mail", True)])
        again = await store.get("old")
        assert again is not None
        assert again.context == {"tenant": "acme"}
        assert await store.paused_queues() == ["mail"]
    finally:
        await store.aclose()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


async def test_the_unfiltered_newest_first_page_reads_an_index_not_every_job(
    store: SQLiteStore, tmp_path: Path
) -> None:
    """``find`` with no filter (the API's first page of jobs) walks an index on ``seq``
    from its end instead of sorting the whole table (100,000 jobs took a second)."""
    from actorwork.stores.sqlite import _SELECT

    await store.apply([Persist(_job("j1", 1))])
    db = sqlite3.connect(tmp_path / "jobs.db")
    try:
        plan = db.execute(
            f"EXPLAIN QUERY PLAN SELECT {_SELECT} FROM jobs ORDER BY seq DESC LIMIT ?", (100,)
        ).fetchall()
    finally:
        db.close()
    steps = [row[-1] for row in plan]
    assert steps[0] == "SCAN jobs USING INDEX jobs_seq", steps
    assert not [step for step in steps if "TEMP B-TREE" in step], steps  # no sort of all
