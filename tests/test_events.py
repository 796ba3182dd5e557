"""Job events: one of each kind reaches a subscriber, live output arrives while a job
runs, a slow subscriber loses events (and is told) without holding the Scheduler
back, and subscriptions work from another actor system and end with its link."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import msgspec
import pytest
from structlog.testing import capture_logs

from actorwork import ActorSystem
from actorwork import events as ev
from actorwork.client import Client, EventStream
from actorwork.messages import LogLine
from actorwork.runtime import Actor, ActorRef
from actorwork.scheduler.actor import Scheduler
from actorwork.scheduler.subscribers import Subscribers
from actorwork.testing import job_system
from actorwork.testing.jobs import InlineJobs
from tests.jobs import event_works, works

MODULES = ["tests.jobs.works", "tests.jobs.event_works"]


async def until(stream: EventStream, kind: type[ev.Event], **fields: object) -> list[ev.Event]:
    """Events of ``stream`` up to and including the first ``kind`` with ``fields``."""
    seen: list[ev.Event] = []
    with anyio.fail_after(20):
        async for event in stream:
            seen.append(event)
            if type(event) is kind and all(getattr(event, k) == v for k, v in fields.items()):
                return seen
    raise AssertionError(f"the stream ended before a {kind.__name__}: {seen}")


@asynccontextmanager
async def inline() -> AsyncIterator[InlineJobs]:
    event_works.GATES.clear()
    async with job_system(MODULES) as jobs:
        yield jobs


async def test_a_gated_job_tells_each_step_of_its_life_and_its_output_before_it_ends() -> None:
    async with inline() as jobs, jobs.client.events() as stream:
        handle = await jobs.submit(event_works.gated, "a")
        seen = await until(stream, ev.JobLogged, job_id=handle.id)
        # The job still waits at its gate: its line came while it ran.
        assert not event_works.gate("a").is_set()
        assert (await handle.status()) == "running"
        logged = seen[-1]
        assert isinstance(logged, ev.JobLogged)
        assert [line.text for line in logged.lines] == ["waiting at the gate"]
        event_works.gate("a").set()
        seen += await until(stream, ev.JobSucceeded, job_id=handle.id)
    kinds = [type(e) for e in seen]
    for kind in (
        ev.JobSubmitted,
        ev.JobDispatched,
        ev.JobStarted,
        ev.WorkerBusy,
        ev.JobLogged,
        ev.JobProgress,
        ev.ArtifactAdded,
        ev.WorkerIdle,
        ev.JobSucceeded,
    ):
        assert kind in kinds, (kind, kinds)
    assert kinds.index(ev.JobSubmitted) < kinds.index(ev.JobDispatched) < kinds.index(ev.JobStarted)
    assert kinds.index(ev.JobStarted) < kinds.index(ev.WorkerIdle) < kinds.index(ev.JobSucceeded)
    seqs = [e.seq for e in seen]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert all(e.job_id == handle.id and e.work == "events.gated" for e in seen)
    progress = next(e for e in seen if isinstance(e, ev.JobProgress))
    assert (progress.fraction, progress.message) == (0.25, "at the gate")
    artifact = next(e for e in seen if isinstance(e, ev.ArtifactAdded))
    assert artifact.name == "note.txt"
    body = msgspec.to_builtins(seen[-1])
    assert body["type"] == "job.succeeded"
    assert msgspec.json.decode(msgspec.json.encode(body))["job_id"] == handle.id


async def test_failed_retrying_dead_cancelled_deleted_and_scheduled_are_told() -> None:
    async with inline() as jobs, jobs.client.events() as stream:
        refused = await jobs.submit(works.refuse)
        failed = (await until(stream, ev.JobFailed, job_id=refused.id))[-1]
        assert isinstance(failed, ev.JobFailed)
        assert "not today" in failed.error

        boom = await jobs.submit(works.boom, "x", retries=1)
        retrying = (await until(stream, ev.JobRetrying, job_id=boom.id))[-1]
        assert isinstance(retrying, ev.JobRetrying)
        assert "boom x" in retrying.error
        assert retrying.due is not None
        await jobs.advance(600)
        dead = (await until(stream, ev.JobDead, job_id=boom.id))[-1]
        assert isinstance(dead, ev.JobDead)
        assert dead.attempt == 2

        later = await jobs.submit(works.noop, delay=3600)
        scheduled = await until(stream, ev.JobScheduled, job_id=later.id)
        assert any(isinstance(e, ev.JobSubmitted) and e.status == "scheduled" for e in scheduled)
        await later.cancel()
        cancelled = (await until(stream, ev.JobCancelled, job_id=later.id))[-1]
        assert cancelled.status == "cancelled"

        await jobs.client.delete(later.id)
        deleted = (await until(stream, ev.JobDeleted, job_id=later.id))[-1]
        assert deleted.work == works.noop.name


async def test_a_cron_firing_is_told() -> None:
    from actorwork.schedules import schedule

    async with inline() as jobs, jobs.client.events(kinds=["schedule.fired"]) as stream:
        await jobs.client.add_schedule(schedule("tick", works.noop.name, "* * * * *"))
        await jobs.advance(60)
        fired = (await until(stream, ev.ScheduleFired))[-1]
        assert isinstance(fired, ev.ScheduleFired)
        assert (fired.schedule, fired.work) == ("tick", works.noop.name)


async def test_pausing_and_resuming_a_queue_are_told() -> None:
    async with inline() as jobs, jobs.client.events(queue="mail") as stream:
        await jobs.client.pause_queue("mail")
        await jobs.client.pause_queue("mail", paused=False)
        seen = await until(stream, ev.QueueResumed, queue="mail")
    assert [type(e) for e in seen] == [ev.QueuePaused, ev.QueueResumed]


async def test_filters_pass_only_matching_events() -> None:
    async with inline() as jobs, jobs.client.events(work=works.add.name) as stream:
        await jobs.submit(works.noop)
        added = await jobs.submit(works.add, {"x": 1, "y": 2})
        seen = await until(stream, ev.JobSucceeded, job_id=added.id)
    assert {e.job_id for e in seen} == {added.id}
    with pytest.raises(ValueError, match=r"unknown event kind 'job\.bogus'"):
        jobs.client.events(kinds=["job.bogus"])


def test_every_event_kind_encodes_to_json_with_its_type() -> None:
    for kind, tag in ev.EVENT_KINDS.items():
        event = kind(job_id="j", queue="q")
        body = msgspec.to_builtins(event)
        assert body["type"] == tag
        assert msgspec.json.decode(msgspec.json.encode(body), type=ev.Event) == event
    assert ev.EVENT_KINDS[ev.QueuePaused] == "queue.paused"
    assert ev.EVENT_KINDS[ev.QueueResumed] == "queue.resumed"


async def test_a_slow_subscriber_is_told_what_it_lost_and_the_scheduler_goes_on() -> None:
    jobs_count = 200
    async with (
        inline() as jobs,
        jobs.client.events(kinds=["job.succeeded"], buffer=5) as slow,
        jobs.client.events(kinds=["job.succeeded"], buffer=10_000) as fast,
    ):
        handles = [await jobs.submit(works.noop) for _ in range(jobs_count)]
        for handle in handles:  # the Scheduler finished them all, the slow one unread
            await handle.wait(timeout=30)
        told = await until_count(fast, jobs_count)
        assert {e.job_id for e in told} == {h.id for h in handles}
        received, lost = 0, 0
        with anyio.fail_after(20):
            while received + lost < jobs_count:
                event = await anext(slow)
                if isinstance(event, ev.EventsLost):
                    lost += event.count
                else:
                    received += 1
    assert lost > 0
    assert received <= 2 * 5  # its buffer here and at the Scheduler, no more
    assert received + lost == jobs_count


async def until_count(stream: EventStream, count: int) -> list[ev.Event]:
    seen: list[ev.Event] = []
    with anyio.fail_after(30):
        while len(seen) < count:
            seen.append(await anext(stream))
    return seen


def test_publishing_never_waits_for_a_subscriber_and_counts_what_it_drops() -> None:
    subscribers = Subscribers(lambda: 1.0)
    ref = object()  # never told anything here: no sender runs
    sub = subscribers.add("s", ref, ev.EventFilter(), 3)  # type: ignore[arg-type]
    for index in range(10):  # a plain call each time: publishing cannot wait
        subscribers.publish([ev.JobQueued(job_id=f"j{index}")])
    assert [e.job_id for e in sub.pending] == ["j0", "j1", "j2"]
    assert sub.lost == 7
    assert subscribers.seq == 10
    taken = sub.take()
    assert isinstance(taken[0], ev.EventsLost)
    assert taken[0].count == 7
    assert [e.seq for e in taken[1:]] == [1, 2, 3]
    assert sub.lost == 0
    assert not sub.pending


async def test_subscribing_over_unix_from_another_system_and_leaving_with_the_link(
    tmp_path: Path,
) -> None:
    address = f"unix://{tmp_path}/scheduler.sock"
    scheduler = Scheduler(store=tmp_path / "jobs.db", modules=MODULES, tick=0.01)
    async with ActorSystem("scheduler", listen=address) as server:
        await server.spawn(scheduler, name="scheduler")
        async with ActorSystem("peer") as peer, Client(peer, address) as client:
            stream = client.events()
            async with stream:
                handle = await client.submit(works.noop)
                seen = await until(stream, ev.JobSubmitted, job_id=handle.id)
                assert seen[-1].work == works.noop.name
                assert len(scheduler.subscribers) == 1
                await client.cancel(handle.id)
                await until(stream, ev.JobCancelled, job_id=handle.id)
            await until_subscribers(scheduler, 0)  # closing the stream unsubscribed
            # A subscriber whose system goes away without unsubscribing goes with its link.
            leaving = client.events()
            await leaving.__aenter__()
            await until_subscribers(scheduler, 1)
        await until_subscribers(scheduler, 0)


class _Leaving(Actor):
    """A subscriber whose stop the test holds open: its mailbox is closed, and the
    Scheduler, not told yet, keeps sending it batches."""

    def __init__(self, scheduler: ActorRef, release: anyio.Event) -> None:
        self.scheduler = scheduler
        self.release = release

    async def on_start(self) -> None:
        await self.scheduler.ask(ev.Subscribe("leaving", ev.EventFilter(), 100))

    async def receive(self, message: ev.EventBatch) -> None:
        pass

    async def on_stop(self) -> None:
        await self.release.wait()


async def test_a_batch_for_a_subscriber_that_stopped_is_dropped_without_a_warning(
    tmp_path: Path,
) -> None:
    address = f"unix://{tmp_path}/scheduler.sock"
    scheduler = Scheduler(store=tmp_path / "jobs.db", modules=MODULES, tick=0.01)
    release = anyio.Event()
    async with ActorSystem("scheduler", listen=address) as server:
        await server.spawn(scheduler, name="scheduler")
        async with ActorSystem("peer") as peer, Client(peer, address) as client:
            leaving = _Leaving(await client.scheduler_ref(), release)
            ref = await peer.spawn(leaving, name="leaving")
            with capture_logs() as logs:
                async with anyio.create_task_group() as group:
                    group.start_soon(peer.stop, ref)  # held in on_stop until released
                    try:
                        with anyio.fail_after(20):
                            while not any(e.get("recipient") == "leaving" for e in logs):
                                await client.submit(works.noop)  # events sent to it
                    finally:
                        release.set()
                await until_subscribers(scheduler, 0)  # and then it heard the subscriber left
    assert [e for e in logs if e["log_level"] in ("warning", "error")] == []
    dropped = next(e for e in logs if e.get("recipient") == "leaving")
    assert (dropped["event"], dropped["log_level"]) == ("message_dropped", "debug")


async def until_subscribers(scheduler: Scheduler, count: int) -> None:
    """Poll until ``scheduler`` has ``count`` subscribers (its state has no event for it)."""
    with anyio.fail_after(10):
        while len(scheduler.subscribers) != count:  # noqa: ASYNC110
            await anyio.sleep(0.01)


def test_log_lines_keep_their_shape_in_an_event() -> None:
    line = LogLine(1.0, "stdout", "info", "hello")
    event = ev.JobLogged(job_id="j", lines=[line])
    decoded = msgspec.msgpack.decode(msgspec.msgpack.encode(event), type=ev.Event)
    assert isinstance(decoded, ev.JobLogged)
    assert decoded.lines == [line]
