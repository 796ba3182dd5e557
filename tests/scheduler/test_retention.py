"""The Scheduler prunes finished jobs past their retention, off the hot path, and never
a live one: by a clock the test moves, and under load with a pool running."""

from __future__ import annotations

from collections import Counter
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path

import anyio

from actorwork import ActorSystem
from actorwork.client import Client, JobHandle
from actorwork.clock import ManualClock, Now
from actorwork.config import load_config
from actorwork.errors import JobNotFound
from actorwork.messages import (
    TERMINAL,
    CancelJob,
    GetJob,
    JobReply,
    RetryJob,
    SubmitJob,
    SubmittedReply,
)
from actorwork.scheduler.actor import Scheduler
from actorwork.stores.base import Forget, Retention
from actorwork.topology import start_pools, start_scheduler
from actorwork.work import Keep
from tests.jobs import works
from tests.jobs.harness import eventually


async def test_a_finished_job_goes_when_its_hours_are_up(tmp_path: Path) -> None:
    clock = ManualClock()
    retention = Retention(keep={"cancelled": Keep(hours=1.0)}, interval=0)
    scheduler = Scheduler(
        store=tmp_path / "jobs.db",
        modules=["tests.jobs.works"],
        clock=lambda: Now.read(clock),
        retention=retention,
    )
    async with ActorSystem("shell") as system:
        ref = await system.spawn(scheduler, name="scheduler")
        ids = []
        for _ in range(3):  # no pool: they stay queued until cancelled
            reply = await ref.ask(SubmitJob(work=works.noop.name, payload=b"\xc0"))
            assert isinstance(reply, SubmittedReply)
            ids.append(reply.job_id)
        await ref.ask(CancelJob(ids[0]))
        clock.advance(timedelta(minutes=59))
        assert await scheduler.prune() == 0
        clock.advance(timedelta(minutes=2))
        assert await scheduler.prune() == 1
        gone = await ref.ask(GetJob(ids[0]))
        assert gone == JobReply(None)
        assert await ref.ask(RetryJob(ids[0])) == JobReply(None)
        # A job retried since the store last wrote it: terminal there, live here.
        await ref.ask(CancelJob(ids[1]))
        clock.advance(timedelta(hours=2))
        stored = await scheduler.store.get(ids[1])
        assert stored is not None
        scheduler.state.revive(stored, Now.read(clock))  # its commit still to come
        assert await scheduler.prune() == 0
        assert await scheduler.store.get(ids[1]) is not None
        for job_id in ids[2:]:  # live, however old
            reply = await ref.ask(GetJob(job_id))
            assert isinstance(reply, JobReply)
            assert reply.job is not None
            assert reply.job.status == "queued"


def _config_text(tmp_path: Path) -> str:
    return f"""
[jobs]
modules = ["tests.jobs.works"]

[scheduler]
address = "inproc://retention-{tmp_path.name}"
store = "{tmp_path}/jobs.db"

[retention]
succeeded = {{ rows = 0 }}
failed = {{ hours = 0 }}
interval = 0.01
batch = 7

[pools.main]
kind = "local"
size = 4
outbox = "{tmp_path}/outbox"
"""


async def test_pruning_under_load_never_touches_a_live_job(tmp_path: Path) -> None:
    """Jobs flow, and failed ones are retried, while a pruning pass runs every 10 ms;
    each job forgotten was finished, in the store and in the Scheduler, when it went,
    and once only; delayed jobs, however old, stay."""
    path = tmp_path / "actorwork.toml"
    path.write_text(_config_text(tmp_path))
    config = load_config(path, env={})
    forgotten: Counter[str] = Counter()
    touched_live: list[str] = []
    async with AsyncExitStack() as stack:
        scheduler = await start_scheduler(stack, config)
        store = scheduler.store
        apply = store.apply

        async def checked_apply(effects: object) -> None:
            assert isinstance(effects, list)
            for effect in effects:
                if isinstance(effect, Forget):
                    stored = await store.get(effect.job_id)
                    live = effect.job_id in scheduler.state.jobs
                    if live or (stored is not None and stored.status not in TERMINAL):
                        touched_live.append(effect.job_id)
                    forgotten[effect.job_id] += 1
            await apply(effects)  # type: ignore[arg-type]

        store.apply = checked_apply  # type: ignore[method-assign]
        await start_pools(stack, config)
        client = await stack.enter_async_context(Client(scheduler.system, config.scheduler.address))
        later = [await client.submit("noop", delay=3600) for _ in range(5)]
        ran: list[JobHandle] = []
        refused: list[JobHandle] = []
        for wave in range(6):
            ran += [await client.submit("sleep", 0.05) for _ in range(10)]
            ran += [await client.submit(works.add, works.Pair(wave, 1)) for _ in range(20)]
            await anyio.sleep(0.05)
            refused += [await client.submit("refuse") for _ in range(5)]
        # Failed jobs are retried while they are pruned: a retried one is live again.
        retried = 0
        for handle in refused:
            for _ in range(5):
                try:
                    await client.retry(handle.id)
                    retried += 1
                except JobNotFound:
                    break
        assert retried > 0
        submitted = {handle.id for handle in ran + refused}
        await eventually(lambda: submitted <= set(forgotten), "every finished job pruned")
        assert touched_live == []
        assert set(forgotten.values()) == {1}
        for handle in later:
            stored = await store.get(handle.id)
            assert stored is not None
            assert stored.status == "scheduled"
