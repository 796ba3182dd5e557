"""The job system end to end on the PostgreSQL store, in the unix topology: submit,
results, artifacts, retries, and a Scheduler restarted while a Pool works, losing nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio
import anyio.abc
import pytest

from actorwork import JobSystem
from actorwork.config import Config, load_config
from actorwork.stores.postgresql import PostgreSQLStore
from actorwork.testing.stores import TemporaryPostgres
from actorwork.topology import start_pools, start_scheduler
from tests.jobs import works

pytestmark = pytest.mark.slow


def _config(tmp_path: Path, server: TemporaryPostgres, database: str) -> Path:
    secret = tmp_path / "store-password"
    secret.write_text(server.password)
    secret.chmod(0o600)
    path = tmp_path / "actorwork.toml"
    path.write_text(
        f"""
[jobs]
topology = "inline"
modules = ["tests.jobs.works"]

[scheduler]
address = "unix://{tmp_path}/s.sock"
store = "{server.url(database, password=False)}"
store_password_file = "{secret}"
lease = 5.0
retry_base = 0.01
retry_cap = 0.05
leader_lease = 3.0

[pools.main]
kind = "local"
size = 4
outbox = "{tmp_path}/outbox"
heartbeat = 0.5
"""
    )
    return path


def _load(path: Path, *, client: bool = False) -> Config:
    env = {"ACTORWORK_JOBS__TOPOLOGY": "distributed"} if client else {}
    return load_config(path, env=env)


@asynccontextmanager
async def _client(path: Path) -> AsyncIterator[JobSystem]:
    async with JobSystem(_load(path, client=True)) as jobs:
        yield jobs


@pytest.fixture
def config_path(postgres_server: TemporaryPostgres, tmp_path: Path) -> Path:
    return _config(tmp_path, postgres_server, postgres_server.create_database("e2e"))


async def test_jobs_run_with_results_artifacts_and_retries(config_path: Path) -> None:
    config = _load(config_path)
    async with AsyncExitStack() as stack:
        scheduler = await start_scheduler(stack, config)
        assert isinstance(scheduler.store, PostgreSQLStore)
        await start_pools(stack, config)
        async with _client(config_path) as jobs:
            added = await jobs.submit(works.add, works.Pair(2, 3))
            made = await jobs.submit("artifact", "report.pdf")
            dead = await jobs.submit("boom", "x")
            assert await added.result(timeout=60) == 5
            await made.result(timeout=60)
            view = await dead.wait(timeout=60)
            assert (view.status, view.attempt) == ("dead", 3)
            client = jobs.client
            assert client is not None
            attempts = await client.attempts(dead.id)
            assert [(a.result.attempt, a.committed) for a in attempts] == [
                (1, True),
                (2, True),
                (3, True),
            ]
            shown = await client.get(made.id)
            assert shown.result is not None
            assert shown.result.artifacts
            assert all(a.data for a in shown.result.artifacts)


async def _run_scheduler(
    config: Config, stop: anyio.Event, *, task_status: anyio.abc.TaskStatus[None]
) -> None:
    """A Scheduler in a task of its own, so it stops while the Pool goes on."""
    async with AsyncExitStack() as stack:
        await start_scheduler(stack, config)
        task_status.started()
        await stop.wait()


async def test_a_scheduler_restarted_while_its_pool_works_loses_nothing(
    config_path: Path,
) -> None:
    config = _load(config_path)
    async with anyio.create_task_group() as tg, AsyncExitStack() as pools:
        first = anyio.Event()
        await tg.start(_run_scheduler, config, first)
        await start_pools(pools, config)
        async with _client(config_path) as jobs:
            handles = [await jobs.submit("sleep", 0.05 * (i % 5)) for i in range(30)]
            await handles[0].wait(timeout=60)
        first.set()  # a clean stop, jobs still running: its lease is released at once
        await anyio.sleep(0.5)  # the Pool notices, and keeps its results in its outbox
        second = anyio.Event()
        await tg.start(_run_scheduler, config, second)
        async with _client(config_path) as jobs:
            client = jobs.client
            assert client is not None
            views = [await client.wait(h.id, timeout=90) for h in handles]
            assert {v.status for v in views} == {"succeeded"}
            for view in views:
                assert [a.committed for a in await client.attempts(view.id)].count(True) == 1
        second.set()


async def test_a_paused_queue_and_a_jobs_context_survive_a_scheduler_restart(
    config_path: Path,
) -> None:
    config = _load(config_path)
    async with AsyncExitStack() as stack:
        await start_scheduler(stack, config)
        async with _client(config_path) as jobs:
            client = jobs.client
            assert client is not None
            await client.pause_queue("default")
            handle = await client.submit("add", works.Pair(1, 2), context={"tenant": "acme"})
    async with AsyncExitStack() as stack:  # the same database, a new Scheduler, a Pool now
        await start_scheduler(stack, config)
        await start_pools(stack, config)
        async with _client(config_path) as jobs:
            client = jobs.client
            assert client is not None
            assert [q.paused for q in await client.queues() if q.name == "default"] == [True]
            assert (await client.get(handle.id)).status == "queued"
            await client.pause_queue("default", paused=False)
            assert await client.result(handle.id, timeout=60) == 3
    store = PostgreSQLStore(config.scheduler.store_url, read_only=True)
    await store.open()
    try:
        job = await store.get(handle.id)
        assert job is not None
        assert job.context == {"tenant": "acme"}
        assert await store.paused_queues() == []
    finally:
        await store.aclose()
