"""The Scheduler actor's own bookkeeping, seen from inside one process."""

from __future__ import annotations

from pathlib import Path

import anyio

from actorwork import ActorSystem
from actorwork.messages import AwaitJob, CancelJob, JobReply, SubmitJob, SubmittedReply
from actorwork.scheduler.actor import Scheduler, new_job_id
from tests.jobs import works
from tests.jobs.harness import eventually


async def test_answered_waits_do_not_pile_up(tmp_path: Path) -> None:
    """Long polls answered early (their job finished) leave the deadline heap soon."""
    scheduler = Scheduler(store=tmp_path / "jobs.db", modules=["tests.jobs.works"], tick=0.01)
    async with ActorSystem("shell") as system:
        ref = await system.spawn(scheduler, name="scheduler")
        ids = []
        for _ in range(3000):  # no pool: every job stays queued
            reply = await ref.ask(SubmitJob(work=works.noop.name, payload=b"\xc0"))
            assert isinstance(reply, SubmittedReply)
            ids.append(reply.job_id)
        answers: list[JobReply] = []

        async def await_job(job_id: str) -> None:
            answers.append(await ref.ask(AwaitJob(job_id, wait=600.0), timeout=60))

        async with anyio.create_task_group() as tg:
            for job_id in ids:
                tg.start_soon(await_job, job_id)
            await eventually(lambda: scheduler._waiters.entries == 3000, "every wait registered")
            for job_id in ids:
                await ref.ask(CancelJob(job_id))
        assert sorted(a.job.id for a in answers if a.job is not None) == sorted(ids)
        assert {a.job.status for a in answers if a.job is not None} == {"cancelled"}
        # Without compaction all 3000 entries would stay until their 600 s are up.
        await eventually(lambda: scheduler._waiters.entries <= 1024, "answered waits dropped")


def test_job_ids_are_fresh_hex() -> None:
    ids = {new_job_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
