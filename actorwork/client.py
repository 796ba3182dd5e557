"""The client API: submit jobs and follow them, the same way in every topology.

::

    handle = await client.submit(render, Page(url="https://example.org"), priority=5)
    print(await handle.status())
    value = await handle.result(timeout=60)     # JobFailed if it did not succeed
    for line in (await handle.wait()).result.logs:
        print(line.level, line.text)

A :class:`Client` talks to the Scheduler actor over any transport. Payloads are
checked here when this process knows the work (it imported the module that defines
it), and again by the Scheduler and the worker. It submits inside ``async with``
(:class:`~actorwork.topology.JobSystem` opens one for you)::

    async with Client(system, "tcp://scheduler:7400") as client:
        handle = await client.submit(render, page)
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from typing import Any, Self

import anyio
import anyio.abc
import msgspec

from actorwork.codec import check
from actorwork.errors import (
    JobError,
    JobFailed,
    JobNotFound,
    PayloadError,
    ScheduleError,
    ScheduleNotFound,
    WorkNotFound,
)
from actorwork.messages import (
    TERMINAL,
    AddSchedule,
    AttemptRecord,
    AttemptsReply,
    AwaitJob,
    CancelJob,
    DeleteJob,
    EnableSchedule,
    GetAttempts,
    GetJob,
    GetStats,
    JobListReply,
    JobReply,
    JobView,
    ListJobs,
    ListPools,
    ListQueues,
    ListSchedules,
    LogLine,
    Message,
    PauseQueue,
    PoolListReply,
    PoolView,
    QueueListReply,
    QueueView,
    RemoveSchedule,
    RetryJob,
    RunSchedule,
    ScheduleListReply,
    ScheduleView,
    StatsReply,
    SubmitJob,
    SubmitJobs,
    SubmitJobsReply,
    SubmitRefusedReply,
    SubmittedReply,
)
from actorwork.runtime import ActorRef, ActorSystem
from actorwork.schedules import Schedule
from actorwork.work import Work, WorkRegistry, default_registry

__all__ = ["Client", "JobHandle"]

_JOB_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_REFUSALS: dict[str, type[JobError]] = {
    "WorkNotFound": WorkNotFound,
    "PayloadError": PayloadError,
    "ScheduleError": ScheduleError,
    "ScheduleNotFound": ScheduleNotFound,
}
_LONG_POLL = 20.0
#: Jobs per ask when listing: a page stays far below the frame cap.
_PAGE = 500
#: Submits made in one turn of the event loop travel as one message, up to this many
#: payload bytes; a payload this large or larger travels alone.
_BATCH_BYTES = 256 * 1024


class Client(anyio.abc.AsyncResource):
    """Submits jobs to the Scheduler at ``scheduler`` (an address or a ref) via ``system``.

    Submits made in one turn of the event loop travel to the Scheduler together, sent
    by a task of the client's own task group, which lives from ``async with`` to
    :meth:`aclose`; submitting outside it is a RuntimeError. Queries need no task and
    work either way.
    """

    def __init__(
        self,
        system: ActorSystem,
        scheduler: str | ActorRef,
        *,
        scheduler_name: str = "scheduler",
        registry: WorkRegistry | None = None,
    ) -> None:
        self.system = system
        self.scheduler = scheduler
        self.scheduler_name = scheduler_name
        self.registry = registry or default_registry
        self._ref: ActorRef | None = None if isinstance(scheduler, str) else scheduler
        self._batch: _SubmitBatch | None = None
        #: Batches not answered yet; a task of ``_task_group`` sends each.
        self._sending: set[_SubmitBatch] = set()
        self._stack: AsyncExitStack | None = None
        self._task_group: anyio.abc.TaskGroup | None = None

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise RuntimeError(f"the client of {self.scheduler!r} is already open")
        async with AsyncExitStack() as stack:
            self._task_group = await stack.enter_async_context(anyio.create_task_group())
            self._stack = stack.pop_all()
        return self

    async def aclose(self) -> None:
        """Stop sending: submits still waiting for the Scheduler's answer fail with a
        JobError (their jobs may have been stored). Idempotent."""
        stack, self._stack = self._stack, None
        task_group, self._task_group = self._task_group, None
        self._batch = None
        if stack is not None and task_group is not None:
            task_group.cancel_scope.cancel()
            await stack.aclose()
        # Batches whose task was cancelled while it waited, or before it first ran.
        sending, self._sending = self._sending, set()
        for batch in sending:
            batch.fail(JobError("the client closed before the Scheduler answered this submit"))

    async def _ask(self, message: Message, timeout: float | None = None) -> Any:
        ref = self._ref
        if ref is None:
            assert isinstance(self.scheduler, str)
            ref = self._ref = await self.system.remote(self.scheduler, self.scheduler_name)
        return await ref.ask(message, timeout=timeout)

    async def submit(
        self,
        work: Work | str,
        payload: Any = None,
        *,
        queue: str | None = None,
        priority: int | None = None,
        retries: int | None = None,
        timeout: float | None = None,
        unique_key: str | None = None,
        delay: timedelta | float | None = None,
        at: datetime | None = None,
        job_id: str | None = None,
    ) -> JobHandle:
        """Queue ``work`` with ``payload``; returns once the job is durably stored.

        ``None`` options take the work's registered defaults. A ``unique_key`` held by
        a job that has not finished returns that job's handle instead (``created`` is
        then False). ``delay`` or ``at`` hold the job until then.
        """
        if self._task_group is None:
            raise RuntimeError(
                f"the client of {self.scheduler!r} is not open; submit inside "
                "'async with Client(...)' (or through a JobSystem)"
            )
        name, encoded = self._encode(work, payload)
        if job_id is not None and not _JOB_ID.fullmatch(job_id):
            raise ValueError(
                f"job_id {job_id!r} must be 1-128 letters, digits or '_', '.', ':', '-'"
            )
        if retries is not None and retries < 0:
            raise ValueError(f"retries must be 0 or more, got {retries!r}")
        due = _due(delay, at)
        message = SubmitJob(
            work=name,
            payload=encoded,
            job_id=job_id or "",
            queue=queue,
            priority=priority,
            max_attempts=None if retries is None else retries + 1,
            timeout=timeout,
            unique_key=unique_key,
            due=due,
        )
        check(message)  # a value out of bounds fails this submit, not its whole batch
        if len(encoded) >= _BATCH_BYTES:
            reply = await self._ask(message)
        else:
            reply = await self._join_batch(message)
        if isinstance(reply, SubmitRefusedReply):
            raise _REFUSALS.get(reply.error_type, JobError)(reply.reason)
        assert isinstance(reply, SubmittedReply), reply
        return JobHandle(self, reply.job_id, created=reply.created)

    async def _join_batch(self, message: SubmitJob) -> Any:
        """Send ``message`` with the other submits of this turn of the loop; its reply.

        The batch is sent by a task of the client's task group, which first runs in the
        next turn of the loop, and each submitter awaits a future of its own, so a
        submitter that is cancelled never takes the others' submits down.
        """
        assert self._task_group is not None, "submit() checks that the client is open"
        batch = self._batch
        if batch is None or batch.size + len(message.payload) > _BATCH_BYTES:
            batch = self._batch = _SubmitBatch()
            self._sending.add(batch)
            self._task_group.start_soon(self._send_batch, batch)
        return await batch.add(message)

    async def _send_batch(self, batch: _SubmitBatch) -> None:
        if self._batch is batch:  # later submits start a batch of their own
            self._batch = None
        await batch.send(self._ask)
        self._sending.discard(batch)

    def _encode(self, work: Work | str, payload: Any) -> tuple[str, bytes]:
        if isinstance(work, Work):
            return work.name, work.encode_payload(payload)
        if not isinstance(work, str):
            raise TypeError(f"work must be a @work function or its name, got {work!r}")
        if work in self.registry:
            return work, self.registry.get(work).encode_payload(payload)
        try:
            return work, msgspec.msgpack.encode(payload)
        except (TypeError, msgspec.EncodeError) as exc:
            raise PayloadError(f"payload for work {work!r} cannot be encoded: {exc}") from exc

    async def get(self, job_id: str) -> JobView:
        """The job as the Scheduler knows it now; JobNotFound if it does not."""
        return _found(job_id, await self._ask(GetJob(job_id)))

    async def attempts(self, job_id: str) -> list[AttemptRecord]:
        """Every result of the job the Scheduler recorded, oldest first, committed or not.

        A retried job shows each failed attempt with its error, traceback and logs.
        """
        reply = await self._ask(GetAttempts(job_id))
        assert isinstance(reply, AttemptsReply), reply
        return reply.attempts

    async def wait(self, job_id: str, *, timeout: float | None = None) -> JobView:
        """Wait until the job is finished (any terminal status) and return it.

        Raises TimeoutError after ``timeout`` seconds (None waits for ever).
        """
        deadline = math.inf if timeout is None else time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"job {job_id!r} did not finish within {timeout} s")
            wait = min(left, _LONG_POLL)
            view = _found(
                job_id, await self._ask(AwaitJob(job_id, wait), timeout=wait + _LONG_POLL)
            )
            if view.status in TERMINAL:
                return view

    async def result(self, job_id: str, *, timeout: float | None = None) -> Any:
        """The return value of a job that succeeded; JobFailed (with the job) otherwise."""
        view = await self.wait(job_id, timeout=timeout)
        if view.status != "succeeded" or view.result is None:
            raise JobFailed(
                f"job {job_id!r} ({view.work}) ended {view.status} after attempt "
                f"{view.attempt}: {view.error or 'no error given'}",
                job=view,
            )
        value = view.result.value
        if value is None:
            return None
        return msgspec.msgpack.decode(value, type=self._return_type(view.work))

    def _return_type(self, work: str) -> Any:
        if work not in self.registry:
            return Any
        hints = getattr(self.registry.get(work).func, "__annotations__", {})
        annotation = hints.get("return", Any)
        return Any if isinstance(annotation, str) else annotation

    async def cancel(self, job_id: str, reason: str = "cancelled by request") -> JobView:
        return _found(job_id, await self._ask(CancelJob(job_id, reason)))

    async def retry(self, job_id: str) -> JobView:
        """Queue a dead, failed or cancelled job again with fresh attempts."""
        return _found(job_id, await self._ask(RetryJob(job_id)))

    async def delete(self, job_id: str) -> JobView:
        """Forget a finished job; JobError if it is still live (cancel it first)."""
        view = _found(job_id, await self._ask(DeleteJob(job_id)))
        if view.status not in TERMINAL:
            raise JobError(f"job {job_id!r} is {view.status}; cancel it before deleting it")
        return view

    # --- cron schedules -------------------------------------------------------------------

    async def add_schedule(self, schedule: Schedule) -> ScheduleView:
        """Add a cron schedule (see :func:`actorwork.schedules.schedule`), or replace the
        one of its name, which keeps its fence; returns it once it is stored."""
        return _only_schedule(schedule.name, await self._ask(AddSchedule(schedule)))

    async def remove_schedule(self, name: str) -> None:
        """Remove a schedule; its jobs already submitted stay. ScheduleNotFound if none."""
        _schedule_reply(await self._ask(RemoveSchedule(name)))

    async def enable_schedule(self, name: str, enabled: bool = True) -> ScheduleView:
        """Let a schedule fire again from now on (missing nothing it skipped while
        disabled), or with ``enabled=False`` stop it."""
        return _only_schedule(name, await self._ask(EnableSchedule(name, enabled)))

    async def schedules(self, *, count: int = 3) -> list[ScheduleView]:
        """Every schedule, with its next ``count`` fire times."""
        return _schedule_reply(await self._ask(ListSchedules(count)))

    async def run_schedule(self, name: str) -> JobView:
        """Submit schedule ``name``'s job now, apart from its fire times; the new job."""
        reply = await self._ask(RunSchedule(name))
        if isinstance(reply, SubmitRefusedReply):
            raise _REFUSALS.get(reply.error_type, ScheduleError)(reply.reason)
        return _found(name, reply)

    # --- queues, pools and readings ----------------------------------------------------

    async def queues(self) -> list[QueueView]:
        """Every queue the Scheduler knows, with its depth and oldest ready job's age."""
        reply = await self._ask(ListQueues())
        assert isinstance(reply, QueueListReply), reply
        return reply.queues

    async def pause_queue(self, queue: str, paused: bool = True) -> QueueView:
        """Stop dispatching from ``queue`` (``paused=False``: resume); the queue after."""
        reply = await self._ask(PauseQueue(queue, paused))
        assert isinstance(reply, QueueListReply), reply
        if reply.queues:
            return reply.queues[0]
        return QueueView(name=queue)  # resumed, and nothing else keeps it known

    async def pools(self) -> list[PoolView]:
        """Every pool the Scheduler knows, with its capacity and running attempts."""
        reply = await self._ask(ListPools())
        assert isinstance(reply, PoolListReply), reply
        return reply.pools

    async def stats(self) -> StatsReply:
        """The Scheduler's readings: job counts, commit latency, event-loop lag."""
        reply = await self._ask(GetStats())
        assert isinstance(reply, StatsReply), reply
        return reply

    async def page(
        self,
        *,
        status: str | None = None,
        queue: str | None = None,
        work: str | None = None,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> JobListReply:
        """One page of jobs, newest first; its ``next`` is the ``before`` of the next page.

        ``since`` and ``until`` bound when the jobs were created (wall-clock seconds).
        """
        message = ListJobs(status, queue, limit, before, work=work, since=since, until=until)
        check(message)
        reply = await self._ask(message)
        assert isinstance(reply, JobListReply), reply
        return reply

    async def list(
        self, *, status: str | None = None, queue: str | None = None, limit: int = 100
    ) -> list[JobView]:
        """The most recent jobs, newest first, optionally of one status or queue."""
        return [view async for view in self.iter_jobs(status=status, queue=queue, limit=limit)]

    async def iter_jobs(
        self,
        *,
        status: str | None = None,
        queue: str | None = None,
        limit: int | None = None,
        page: int = _PAGE,
    ) -> AsyncIterator[JobView]:
        """Jobs newest first, ``page`` per ask, so any number of them can be listed;
        at most ``limit`` (None: every one)."""
        if page < 1:
            raise ValueError(f"page must be at least 1, got {page!r}")
        before: int | None = None
        left = limit
        while left is None or left > 0:
            size = page if left is None else min(page, left)
            reply = await self._ask(ListJobs(status, queue, size, before))
            assert isinstance(reply, JobListReply), reply
            for view in reply.jobs:
                yield view
            if left is not None:
                left -= len(reply.jobs)
            if reply.next is None or not reply.jobs:
                return
            before = reply.next


class _SubmitBatch:
    """Submits gathered in one turn of the event loop, each with the future of its reply."""

    __slots__ = ("messages", "replies", "size")

    def __init__(self) -> None:
        self.messages: list[SubmitJob] = []
        self.replies: list[asyncio.Future[Any]] = []
        self.size = 0

    def add(self, message: SubmitJob) -> asyncio.Future[Any]:
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.messages.append(message)
        self.replies.append(reply)
        self.size += len(message.payload)
        return reply

    async def send(self, ask: Callable[[Message], Awaitable[Any]]) -> None:
        """Send the batch and answer each submitter; they all get an error if it fails."""
        try:
            if len(self.messages) == 1:
                replies = [await ask(self.messages[0])]
            else:
                reply = await ask(SubmitJobs(self.messages))
                assert isinstance(reply, SubmitJobsReply), reply
                replies = list(reply.replies)
        except Exception as exc:  # noqa: BLE001 - every submitter of the batch gets it
            self.fail(exc)
        else:
            for future, answer in zip(self.replies, replies, strict=True):
                if not future.done():
                    future.set_result(answer)

    def fail(self, exc: BaseException) -> None:
        """Answer every submitter still waiting with ``exc``."""
        for future in self.replies:
            if not future.done():  # a cancelled submitter's is
                future.set_exception(exc)


class JobHandle:
    """One submitted job: await it, query it, cancel it."""

    def __init__(self, client: Client, job_id: str, *, created: bool = True) -> None:
        self.client = client
        self.id = job_id
        #: False when a unique key matched an existing job.
        self.created = created

    async def status(self) -> str:
        return (await self.client.get(self.id)).status

    async def view(self) -> JobView:
        return await self.client.get(self.id)

    async def wait(self, *, timeout: float | None = None) -> JobView:
        return await self.client.wait(self.id, timeout=timeout)

    async def result(self, *, timeout: float | None = None) -> Any:
        return await self.client.result(self.id, timeout=timeout)

    async def cancel(self, reason: str = "cancelled by request") -> JobView:
        return await self.client.cancel(self.id, reason)

    async def logs(self) -> list[LogLine]:
        """The log lines of the job's latest attempt that reached the Scheduler."""
        result = (await self.client.get(self.id)).result
        return [] if result is None else list(result.logs)

    def __repr__(self) -> str:
        return f"<JobHandle {self.id}>"


def _schedule_reply(reply: object) -> list[ScheduleView]:
    if isinstance(reply, SubmitRefusedReply):
        raise _REFUSALS.get(reply.error_type, ScheduleError)(reply.reason)
    assert isinstance(reply, ScheduleListReply), reply
    return reply.schedules


def _only_schedule(name: str, reply: object) -> ScheduleView:
    views = _schedule_reply(reply)
    if not views:
        raise ScheduleNotFound(f"no schedule {name!r} is known to the scheduler")
    return views[0]


def _found(job_id: str, reply: object) -> JobView:
    assert isinstance(reply, JobReply), reply
    if reply.job is None:
        raise JobNotFound(f"no job {job_id!r} is known to the scheduler")
    return reply.job


def _due(delay: timedelta | float | None, at: datetime | None) -> float | None:
    if delay is not None and at is not None:
        raise ValueError("give delay or at, not both")
    if at is not None:
        if at.tzinfo is None:
            raise ValueError(f"at={at!r} has no time zone; pass an aware datetime")
        return at.timestamp()
    if delay is None:
        return None
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
    if seconds < 0:
        raise ValueError(f"delay must not be negative, got {delay!r}")
    return time.time() + seconds
