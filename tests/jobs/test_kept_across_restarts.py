"""What a Scheduler keeps in its store across a restart on the same file: the context
middleware gave a job at its submit (it reaches the work, and its retry), and the
queues an operator paused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from actorwork import JobSystem
from actorwork.config import Config, load_config
from tests.jobs import event_works, works


def _config(tmp_path: Path, *, middleware: tuple[str, ...] = ()) -> Config:
    data: dict[str, Any] = {
        "jobs": {
            "modules": ["tests.jobs.works", "tests.jobs.event_works"],
            "middleware": list(middleware),
        },
        "scheduler": {
            "address": f"inproc://kept-{tmp_path.name}",
            "store": f"{tmp_path}/jobs.db",
            "retry_base": 0.01,
            "retry_cap": 0.05,
        },
        "pools": {"main": {"size": 1, "outbox": f"{tmp_path}/outbox", "heartbeat": 0.5}},
    }
    return load_config(data=data, env={})


async def test_a_jobs_context_survives_a_scheduler_restart_before_it_runs(
    tmp_path: Path,
) -> None:
    config = _config(tmp_path, middleware=("tests.jobs.hooks:Tenant",))
    async with JobSystem(config, pools=False) as jobs:  # stored, not run
        handle = await jobs.submit(event_works.context)
        assert await handle.status() == "queued"
    plain = _config(tmp_path)  # no middleware now: the context comes from the store
    async with JobSystem(plain) as jobs:
        assert jobs.client is not None
        seen = await jobs.client.result(handle.id, timeout=60)
    assert seen == {"tenant": "acme"}


async def test_a_restored_jobs_context_reaches_its_retry(tmp_path: Path) -> None:
    config = _config(tmp_path, middleware=("tests.jobs.hooks:Tenant",))
    async with JobSystem(config, pools=False) as jobs:
        handle = await jobs.submit(event_works.flaky_context)
    async with JobSystem(_config(tmp_path)) as jobs:
        assert jobs.client is not None
        seen = await jobs.client.result(handle.id, timeout=60)
        view = await jobs.client.get(handle.id)
    assert view.attempt == 2
    assert seen == {"tenant": "acme"}


async def test_a_paused_queue_stays_paused_after_a_scheduler_restart(tmp_path: Path) -> None:
    config = _config(tmp_path)
    async with JobSystem(config) as jobs:
        assert jobs.client is not None
        paused = await jobs.client.pause_queue("default")
        assert paused.paused
    async with JobSystem(config) as jobs:
        client = jobs.client
        assert client is not None
        assert [q.paused for q in await client.queues() if q.name == "default"] == [True]
        handle = await jobs.submit(works.add, works.Pair(2, 3))
        view = await client.get(handle.id)
        assert (view.status, view.waiting) == ("queued", "queue 'default' is paused")
        await client.pause_queue("default", paused=False)
        assert await handle.result(timeout=60) == 5
    async with JobSystem(config, pools=False) as jobs:  # resumed is stored too
        assert jobs.client is not None
        assert [q.paused for q in await jobs.client.queues() if q.name == "default"] == []
