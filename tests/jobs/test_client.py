"""The Client's own tasks: submits batched by a task group it owns, and nothing left after it.

A stand-in Scheduler (an actor that records the submits it takes and answers them only
when told) shows what travels and what is still running when the client closes.
"""

from __future__ import annotations

import asyncio
from functools import partial

import anyio
import pytest

from actorwork import Actor, ActorSystem, Client, JobError, Reply
from actorwork.messages import SubmitJob, SubmitJobs, SubmitJobsReply, SubmittedReply


class HeldScheduler(Actor):
    """Takes submits and leaves them unanswered until :meth:`answer`."""

    def __init__(self) -> None:
        self.received: list[SubmitJob | SubmitJobs] = []
        self.pending: list[Reply] = []
        self.arrived = anyio.Event()

    async def receive(self, message: SubmitJob | SubmitJobs) -> None:
        self.received.append(message)
        reply = self.defer_reply()
        assert reply is not None
        self.pending.append(reply)
        self.arrived.set()

    def answer(self) -> None:
        for message, reply in zip(self.received, self.pending, strict=True):
            jobs = message.jobs if isinstance(message, SubmitJobs) else [message]
            replies = [SubmittedReply(job.job_id) for job in jobs]
            reply.resolve(
                replies[0] if isinstance(message, SubmitJob) else SubmitJobsReply(replies)
            )


async def test_a_closed_client_leaves_no_task_running() -> None:
    held = HeldScheduler()
    outcomes: list[BaseException] = []

    async def submit(client: Client, job_id: str) -> None:
        try:
            await client.submit("anything", {"n": 1}, job_id=job_id)
        except JobError as exc:
            outcomes.append(exc)

    async with ActorSystem("client-test") as system:
        ref = await system.spawn(held, name="scheduler")
        before = asyncio.all_tasks()
        async with anyio.create_task_group() as submitters:
            async with Client(system, ref) as client:
                submitters.start_soon(submit, client, "a")
                submitters.start_soon(submit, client, "b")
                await held.arrived.wait()  # the batch is sent; its answer never comes
            await anyio.wait_all_tasks_blocked()
            submitters.cancel_scope.cancel()  # a submitter left waiting would hang the test
        assert asyncio.all_tasks() - before == set()
        assert [str(exc) for exc in outcomes] == [
            "the client closed before the Scheduler answered this submit"
        ] * 2


async def test_submits_of_one_turn_travel_together() -> None:
    held = HeldScheduler()
    async with ActorSystem("client-test") as system:
        ref = await system.spawn(held, name="scheduler")
        async with Client(system, ref) as client, anyio.create_task_group() as submitters:
            for job_id in ("a", "b", "c"):
                submitters.start_soon(partial(client.submit, "anything", {"n": 1}, job_id=job_id))
            await held.arrived.wait()
            held.answer()
    assert [type(message) for message in held.received] == [SubmitJobs]
    assert isinstance(held.received[0], SubmitJobs)
    assert [job.job_id for job in held.received[0].jobs] == ["a", "b", "c"]


async def test_submitting_outside_async_with_is_refused_naming_the_scheduler() -> None:
    async with ActorSystem("client-test") as system:
        client = Client(system, "inproc://nowhere")
        with pytest.raises(RuntimeError, match=r"client of 'inproc://nowhere' is not open"):
            await client.submit("anything", {"n": 1})
        async with client:
            pass
        with pytest.raises(RuntimeError, match=r"is not open"):
            await client.submit("anything", {"n": 1})
