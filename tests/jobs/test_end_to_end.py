"""The job system end to end, in every topology: submit, run, results, logs, retries, bad input.

Topologies under test (one config each, the same test code):

- ``inline``: Scheduler, Pool and workers in this process over ``inproc://``;
- ``thread``: as inline, with a ``thread`` pool;
- ``process``: workers in child processes over ``pipe://``;
- ``unix`` and ``tcp``: the Scheduler listens on a socket; the Pool and the client are
  separate actor systems that connect to it (in this process, so the test stays fast;
  the fault tests run them as separate processes).
"""

from __future__ import annotations

import gc
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from actorwork import JobFailed, JobSystem, PayloadError, WorkNotFound
from actorwork.config import Config, load_config
from actorwork.errors import FrameTooLarge, JobError, StoreError
from actorwork.stores.base import Job, Persist
from actorwork.stores.sqlite import SQLiteStore
from actorwork.testing import job_system
from actorwork.topology import start_pools, start_scheduler
from tests.jobs import works

TOPOLOGIES = ("inline", "thread", "process", "unix", "tcp")

OpenJobs = Callable[..., Any]


def _config(tmp_path: Path, topology: str, **extra: str) -> Config:
    address = {
        "unix": f"unix://{tmp_path}/s.sock",
        "tcp": "tcp://127.0.0.1:{port}",
    }.get(topology, f"inproc://jobs-{tmp_path.name}")
    kind = {"thread": "thread", "process": "process"}.get(topology, "local")
    text = f"""
[jobs]
topology = "{"local" if topology == "process" else "inline"}"
modules = ["tests.jobs.works"]

[scheduler]
address = "{address}"
store = "{tmp_path}/jobs.db"
lease = 5.0
retry_base = 0.01
retry_cap = 0.05
{extra.get("scheduler", "")}

[pools.main]
kind = "{kind}"
size = 2
outbox = "{tmp_path}/outbox"
heartbeat = 0.5
"""
    if topology == "tcp":
        text = text.replace("{port}", str(_free_port()))
    path = tmp_path / "actorwork.toml"
    path.write_text(text)
    return load_config(path, env={})


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(params=TOPOLOGIES)
def topology(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_jobs(topology: str, tmp_path: Path) -> OpenJobs:
    """Factory: ``async with open_jobs() as jobs`` runs the job system in ``topology``."""

    @asynccontextmanager
    async def open_(**extra: str) -> AsyncIterator[JobSystem]:
        config = _config(tmp_path, topology, **extra)
        if topology in ("unix", "tcp"):
            # Scheduler and Pool in systems of their own, the client distributed.
            async with AsyncExitStack() as stack:
                await start_scheduler(stack, config)
                await start_pools(stack, config)
                client_config = load_config(
                    tmp_path / "actorwork.toml", env={"ACTORWORK_JOBS__TOPOLOGY": "distributed"}
                )
                async with JobSystem(client_config) as jobs:
                    yield jobs
            return
        async with JobSystem(config) as jobs:
            yield jobs

    return open_


# --- results, logs, artifacts ----------------------------------------------------------


async def test_a_job_runs_and_its_result_comes_back(open_jobs: OpenJobs) -> None:
    async with open_jobs() as jobs:
        handle = await jobs.submit(works.add, works.Pair(2, 3))
        assert await handle.result(timeout=60) == 5
        view = await handle.view()
        assert view.status == "succeeded"
        assert view.attempt == 1
        assert view.result is not None
        assert view.result.outcome == "succeeded"


async def test_logs_prints_and_progress_travel_with_the_result(open_jobs: OpenJobs) -> None:
    async with open_jobs() as jobs:
        handle = await jobs.submit("echo", "hello")
        assert await handle.result(timeout=60) == "hello"
        view = await handle.view()
        assert view.result is not None
        lines = [(line.source, line.level, line.text) for line in view.result.logs]
        assert ("log", "info", "echoing") in lines
        assert ("stdout", "info", "printed hello") in lines
        assert ("logging", "warning", "logged hello") in lines
        logged = next(line for line in view.result.logs if line.text == "echoing")
        assert logged.fields["text"] == "hello"
        assert logged.fields["job_id"] == handle.id
        assert (view.progress, view.progress_message) == (0.5, "half way")


async def test_artifacts_travel_with_the_result(open_jobs: OpenJobs) -> None:
    async with open_jobs() as jobs:
        handle = await jobs.submit("artifact", "report.pdf")
        size = await handle.result(timeout=60)
        view = await handle.view()
        assert view.result is not None
        [artifact] = view.result.artifacts
        assert artifact.name == "report.pdf"
        assert artifact.media_type == "application/pdf"
        assert artifact.data == b"%PDF-fake report.pdf"
        assert size == len(artifact.data)


async def test_each_of_concurrent_jobs_keeps_its_own_logs(open_jobs: OpenJobs) -> None:
    async with open_jobs() as jobs:
        handles = [await jobs.submit("echo", f"text-{i}") for i in range(8)]
        for i, handle in enumerate(handles):
            assert await handle.result(timeout=60) == f"text-{i}"
            view = await handle.view()
            assert view.result is not None
            printed = [line.text for line in view.result.logs if line.source == "stdout"]
            assert printed == [f"printed text-{i}"]


# --- failures and retries --------------------------------------------------------------


async def test_an_exception_is_retried_then_the_job_is_dead_with_its_traceback(
    open_jobs: OpenJobs,
) -> None:
    async with open_jobs() as jobs:
        handle = await jobs.submit("boom", "x")
        view = await handle.wait(timeout=60)
        assert view.status == "dead"
        assert view.attempt == 3  # retries=2
        assert view.error == "ValueError: boom x"
        assert view.result is not None
        assert "raise ValueError" in view.result.traceback
        with pytest.raises(JobFailed, match="dead after attempt 3") as info:
            await handle.result()
        assert info.value.job == view


async def test_every_attempt_of_a_retried_job_is_kept_for_diagnosis(
    open_jobs: OpenJobs,
) -> None:
    async with open_jobs() as jobs:
        handle = await jobs.submit("boom", "z")
        assert (await handle.wait(timeout=60)).status == "dead"
        client = jobs.client
        assert client is not None
        attempts = await client.attempts(handle.id)
        assert [(a.result.attempt, a.result.outcome, a.committed) for a in attempts] == [
            (1, "error", True),
            (2, "error", True),
            (3, "error", True),
        ]
        assert all("raise ValueError" in a.result.traceback for a in attempts)
        assert await client.attempts("no-such-job") == []


async def test_work_failed_ends_the_job_without_a_retry(open_jobs: OpenJobs) -> None:
    async with open_jobs() as jobs:
        view = await (await jobs.submit("refuse")).wait(timeout=60)
        assert (view.status, view.attempt) == ("failed", 1)
        assert view.error == "WorkFailed: not today"


async def test_a_dead_job_can_be_retried_and_deleted(open_jobs: OpenJobs) -> None:
    async with open_jobs() as jobs:
        handle = await jobs.submit("boom", "y", retries=0)
        assert (await handle.wait(timeout=60)).status == "dead"
        client = jobs.client
        assert client is not None
        revived = await client.retry(handle.id)
        assert revived.status in ("queued", "running")
        view = await handle.wait(timeout=60)
        assert (view.status, view.attempt) == ("dead", 2)
        await client.delete(handle.id)
        with pytest.raises(JobError, match=handle.id):
            await client.get(handle.id)


async def test_a_timeout_fails_the_attempt(open_jobs: OpenJobs) -> None:
    async with open_jobs() as jobs:
        handle = await jobs.submit("sleep", 30.0, timeout=0.2, retries=1)
        view = await handle.wait(timeout=60)
        assert (view.status, view.attempt) == ("dead", 2)
        assert view.error == "timed out after 0.2 s"


# --- unique, cancel, delay ---------------------------------------------------------------


async def test_a_unique_key_returns_the_live_job(open_jobs: OpenJobs) -> None:
    async with open_jobs() as jobs:
        first = await jobs.submit("sleep", 0.5, unique_key="nightly")
        second = await jobs.submit("sleep", 0.5, unique_key="nightly")
        assert (first.created, second.created) == (True, False)
        assert second.id == first.id
        await first.wait(timeout=60)
        third = await jobs.submit("sleep", 0.0, unique_key="nightly")
        assert third.created
        assert third.id != first.id


async def test_a_submit_of_a_known_id_runs_once_across_a_restart(tmp_path: Path) -> None:
    """A client that retries its submit (it timed out, or it restarted) gets one execution,
    while the job is live, once it finished, and after the Scheduler restarted."""
    config = _config(tmp_path, "inline")
    async with JobSystem(config) as jobs:
        first = await jobs.submit("sleep", 0.2, job_id="dup-1")
        live = await jobs.submit("sleep", 0.2, job_id="dup-1")
        assert (first.created, live.created, live.id) == (True, False, "dup-1")
        done = await first.wait(timeout=60)
        assert done.result is not None
        again = await jobs.submit("sleep", 0.2, job_id="dup-1")
        assert (again.created, again.id) == (False, "dup-1")
    async with JobSystem(config) as jobs:
        client = jobs.client
        assert client is not None
        again = await jobs.submit("sleep", 0.2, job_id="dup-1")
        assert (again.created, again.id) == (False, "dup-1")
        await (await jobs.submit("sleep", 0.0)).wait(timeout=60)  # the pool had its chance
        view = await client.get("dup-1")
        assert view.status == "succeeded"
        assert view.attempt == 1
        assert view.result is not None
        assert view.result.started == done.result.started
        assert [a.result.attempt for a in await client.attempts("dup-1")] == [1]


def test_the_cli_submits_a_known_job_id_once(tmp_path: Path) -> None:
    """``actorwork submit --job-id`` run twice: each run is a Scheduler of its own."""
    _config(tmp_path, "inline")
    args = ["--config", str(tmp_path / "actorwork.toml"), "submit", "echo", '"once"']
    first = _actorwork(*args, "--job-id", "cli-1", "--wait", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "job cli-1 submitted" in first.stdout
    second = _actorwork(*args, "--job-id", "cli-1", "--wait", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "job cli-1 already exists" in second.stdout
    assert "status   succeeded after attempt 1 of" in second.stdout
    with sqlite3.connect(tmp_path / "jobs.db") as db:
        runs = db.execute("SELECT attempt FROM results WHERE job_id = 'cli-1'").fetchall()
    assert runs == [(1,)]


def _actorwork(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The ``actorwork`` command in a process of its own, importing this tree."""
    root = str(Path(__file__).resolve().parents[2])
    return subprocess.run(
        [sys.executable, "-m", "actorwork", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": root},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_a_running_job_is_cancelled_at_its_next_checkin(open_jobs: OpenJobs) -> None:
    async with open_jobs() as jobs:
        handle = await jobs.submit("sleep", 60.0)
        with anyio.fail_after(60):
            while (await handle.status()) != "running":  # noqa: ASYNC110 - polls the Scheduler
                await anyio.sleep(0.02)
        view = await handle.cancel()
        assert view.status == "cancelled"
        assert (await handle.wait(timeout=60)).status == "cancelled"
        # The pool is free again: the next job runs.
        assert await (await jobs.submit(works.add, works.Pair(1, 1))).result(timeout=60) == 2


async def test_waiting_past_a_timeout_raises_and_leaves_the_job_running(
    open_jobs: OpenJobs,
) -> None:
    async with open_jobs() as jobs:
        handle = await jobs.submit("sleep", 60.0)
        with pytest.raises(TimeoutError, match=handle.id):
            await handle.wait(timeout=0.3)  # the Scheduler answers when the wait is over
        assert (await handle.status()) in ("queued", "running")
        assert (await handle.cancel()).status == "cancelled"


async def test_a_delayed_job_waits_until_it_is_due() -> None:
    """By the manual clock of :mod:`actorwork.testing`: due times are the Scheduler's
    decision, the same in every topology."""
    async with job_system(["tests.jobs.works"]) as jobs:
        handle = await jobs.submit(works.add, works.Pair(4, 4), delay=60)
        view = await handle.view()
        assert view.status == "scheduled"
        assert view.due == jobs.clock.wall().timestamp() + 60
        await jobs.advance(59.9)
        assert await handle.status() == "scheduled"
        await jobs.advance(0.1)
        assert await handle.result() == 8


async def test_concurrent_submits_each_get_their_own_answer(open_jobs: OpenJobs) -> None:
    """Submits made together travel together; each still gets its own job or error,
    and a submitter that is cancelled takes nobody else's submit with it."""
    async with open_jobs() as jobs:
        outcomes: dict[int, Any] = {}

        async def submit(i: int) -> None:
            try:
                if i == 7:
                    handle = await jobs.submit("nope", i)
                elif i == 11:
                    handle = await jobs.submit("add", {"x": "bad", "y": i})
                else:
                    handle = await jobs.submit("add", {"x": i, "y": 1})
            except JobError as exc:
                outcomes[i] = exc
            else:
                outcomes[i] = handle

        async with anyio.create_task_group() as tg:
            for i in range(40):
                tg.start_soon(submit, i)
            with anyio.CancelScope() as scope:  # joins the same batch, then gives up
                scope.cancel()
                await jobs.submit("add", {"x": 100, "y": 1})
        assert isinstance(outcomes.pop(7), WorkNotFound)
        assert isinstance(outcomes.pop(11), PayloadError)
        assert len({handle.id for handle in outcomes.values()}) == 38
        for i, handle in outcomes.items():
            assert await handle.result(timeout=60) == i + 1


# --- bad input -----------------------------------------------------------------------------


async def test_an_unknown_work_is_refused_at_submit_naming_it(open_jobs: OpenJobs) -> None:
    async with open_jobs() as jobs:
        with pytest.raises(WorkNotFound, match=r"unknown work 'nope' \(registered: .*add"):
            await jobs.submit("nope", 1)
        assert await (await jobs.submit("add", {"x": 1, "y": 2})).result(timeout=60) == 3


async def test_a_payload_of_the_wrong_type_is_refused_naming_work_and_type(
    open_jobs: OpenJobs,
) -> None:
    async with open_jobs() as jobs:
        with pytest.raises(PayloadError, match=r"'add' must be Pair: Expected `int`, got `str`"):
            await jobs.submit("add", {"x": "one", "y": 2})
        with pytest.raises(PayloadError, match="'noop' takes no payload"):
            await jobs.submit("noop", 5)
        assert await (await jobs.submit("add", {"x": 1, "y": 2})).result(timeout=60) == 3


async def test_a_payload_over_the_frame_cap_fails_alone(open_jobs: OpenJobs) -> None:
    async with open_jobs() as jobs:
        with pytest.raises(FrameTooLarge, match=r"exceeds max_frame_size=16777216"):
            await jobs.submit("echo", "x" * (17 * 1024 * 1024))
        assert await (await jobs.submit("echo", "after")).result(timeout=60) == "after"


async def test_a_corrupt_store_file_is_a_clear_error_naming_it(tmp_path: Path) -> None:
    config = _config(tmp_path, "inline")
    store = anyio.Path(config.scheduler.store)
    await store.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=r"jobs\.db.*not a usable SQLite database"):
        async with JobSystem(config):
            pass
    assert (await store.read_bytes()).startswith(b"this is not")


async def test_results_survive_a_restart_of_the_whole_system(tmp_path: Path) -> None:
    config = _config(tmp_path, "inline")
    async with JobSystem(config) as jobs:
        handle = await jobs.submit("echo", "kept")
        assert await handle.result(timeout=60) == "kept"
    async with JobSystem(config, pools=False) as jobs:
        client = jobs.client
        assert client is not None
        view = await client.get(handle.id)
        assert view.status == "succeeded"
        assert view.result is not None
        assert any(line.text == "printed kept" for line in view.result.logs)
    with sqlite3.connect(config.scheduler.store) as db:
        rows = db.execute("SELECT attempt, committed FROM results WHERE job_id = ?", (handle.id,))
        assert rows.fetchall() == [(1, 1)]


async def test_queued_jobs_wait_for_a_pool_across_restarts(tmp_path: Path) -> None:
    config = _config(tmp_path, "inline")
    async with JobSystem(config, pools=False) as jobs:
        handle = await jobs.submit(works.add, works.Pair(20, 22))
        assert (await handle.status()) == "queued"
    async with JobSystem(config) as jobs:
        client = jobs.client
        assert client is not None
        assert await client.result(handle.id, timeout=60) == 42


async def test_jobs_submitted_after_a_restart_list_after_the_earlier_ones(tmp_path: Path) -> None:
    config = _config(tmp_path, "inline")
    async with JobSystem(config) as jobs:
        first = await jobs.submit(works.add, works.Pair(1, 1))
        await first.wait(timeout=60)
    async with JobSystem(config) as jobs:
        second = await jobs.submit(works.add, works.Pair(2, 2))
        await second.wait(timeout=60)
        client = jobs.client
        assert client is not None
        assert [view.id for view in await client.list(limit=1)] == [second.id]
        assert [view.id for view in await client.list(limit=10)] == [second.id, first.id]


async def test_jobs_are_listed_a_page_at_a_time(tmp_path: Path) -> None:
    config = _config(tmp_path, "inline")
    async with JobSystem(config, pools=False) as jobs:
        ids = [(await jobs.submit(works.add, works.Pair(i, i))).id for i in range(10)]
        client = jobs.client
        assert client is not None
        newest_first = ids[::-1]
        assert [view.id async for view in client.iter_jobs(page=3)] == newest_first
        assert [view.id async for view in client.iter_jobs(page=3, limit=7)] == newest_first[:7]
        assert [view.id for view in await client.list(limit=4)] == newest_first[:4]
        queued = [view.id async for view in client.iter_jobs(status="queued", page=4)]
        assert queued == newest_first


def test_status_lists_more_jobs_than_one_frame_holds(tmp_path: Path) -> None:
    """``actorwork status --limit 100000`` failed with ``message of 41096911 bytes exceeds
    max_frame_size``: the listing now comes a page at a time."""
    _config(tmp_path, "inline")
    count = 50_000  # about 20 MB of views, over the 16 MiB frame cap in one reply

    async def fill() -> None:
        store = SQLiteStore(tmp_path / "jobs.db")
        await store.open()
        try:
            await store.apply([Persist(_stored_job(f"job-{i:05d}", i)) for i in range(count)])
        finally:
            await store.aclose()

    anyio.run(fill)
    done = _actorwork(
        "--config", str(tmp_path / "actorwork.toml"), "status", "--limit", "100000", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) == count
    assert lines[0].startswith("job-49999 ")
    assert lines[-1].startswith("job-00000 ")


def _stored_job(job_id: str, seq: int) -> Job:
    return Job(
        id=job_id,
        work="add",
        queue="default",
        priority=0,
        payload=b"\x82\xa1x\x01\xa1y\x02",
        status="succeeded",
        attempt=1,
        max_attempts=1,
        created=1_700_000_000.0 + seq,
        updated=1_700_000_000.0 + seq,
        seq=seq,
        error="a line of text that a failed job might carry, as views do " * 4,
    )


async def test_jobs_leave_no_reference_cycles_behind(tmp_path: Path) -> None:
    """Everything a job makes is freed when it is done, not left to the cycle collector
    (whose full collections would stall the loop of a busy Scheduler)."""
    async with JobSystem(_config(tmp_path, "inline")) as jobs:
        await (await jobs.submit("echo", "warm up")).result(timeout=60)
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            handles = [await jobs.submit("echo", f"line {i}") for i in range(50)]
            for handle in handles:
                await handle.result(timeout=60)
            gc.collect()
            garbage = [type(o).__qualname__ for o in gc.garbage]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
    assert garbage == [], f"{len(garbage)} objects in cycles: {sorted(set(garbage))}"
