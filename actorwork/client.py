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

A Scheduler that is not listening yet (starting, or restarting) is waited for: each
connect is retried with backoff for up to ``connect_timeout`` seconds (``[jobs]
connect_timeout``, 10 by default) before the ask fails naming the address.

Given several addresses of Schedulers sharing a store (``Client(system, ["tcp://a:7400",
"tcp://b:7400"])``, or one string separated by commas, or one ``tcp://`` name that
resolves to several IP addresses), the client follows the one that
leads (:mod:`actorwork.runtime.follow`): standbys name it, and when it goes away the
others are asked again. Its submits then carry job ids drawn here, so that a submit, a
get or a wait cut off by the leader's death is asked again of the next leader. With
one address or several, a Scheduler in standby is not an error by itself: it did
nothing, so the ask goes to the leader it names, or is made again while a leader is
chosen, for up to ``connect_timeout``; then :class:`~actorwork.errors.NoLeader`.
:meth:`Client.ping` is the readiness check; :meth:`Client.submit_many` submits a whole
list in a few messages.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import re
import time
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from typing import Any, Self

import anyio
import anyio.abc
import msgspec
from anyio.streams.memory import MemoryObjectSendStream

from actorwork._log import get_logger
from actorwork.codec import check
from actorwork.errors import (
    ActorStopped,
    ActorworkError,
    HandshakeError,
    JobError,
    JobFailed,
    JobNotFound,
    NoLeader,
    PayloadError,
    ScheduleError,
    ScheduleNotFound,
    TransportError,
    UsageError,
    WorkNotFound,
)
from actorwork.event_stream import EventStream
from actorwork.events import make_filter
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
    NotLeaderReply,
    PauseQueue,
    Ping,
    Pong,
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
    When,
)
from actorwork.middleware import MiddlewareChain
from actorwork.runtime import ActorRef, ActorSystem, RemoteRef
from actorwork.runtime.follow import find_leader, resolve_addresses, split_addresses
from actorwork.schedules import Schedule
from actorwork.work import Work, WorkRegistry, default_registry
from actorwork.workflow import (
    Workflow,
    WorkflowView,
    compile_workflow,
    retry_order,
    workflow_view,
)

__all__ = ["Client", "EventStream", "JobHandle"]

log = get_logger(__name__)

_JOB_ID = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
_REFUSALS: dict[str, type[JobError]] = {
    "WorkNotFound": WorkNotFound,
    "PayloadError": PayloadError,
    "ScheduleError": ScheduleError,
    "ScheduleNotFound": ScheduleNotFound,
    "JobNotFound": JobNotFound,
}
_LONG_POLL = 20.0
#: The indexes :meth:`Client.map`'s feeder sends to say the source ended or failed.
_END = -1
_SOURCE_FAILED = -2
#: Jobs per ask when listing: a page stays far below the frame cap.
_PAGE = 500
#: Submits made in one turn of the event loop travel as one message, up to this many
#: payload bytes; a payload this large or larger travels alone.
_BATCH_BYTES = 256 * 1024
#: ``submit_many``: at most this many jobs, and about this many bytes (or half the
#: frame cap, if less), per SubmitJobs message.
_MANY_JOBS = 2_000
_MANY_BYTES = 1024 * 1024
#: What a SubmitJob costs on the wire beside its payload and names (tags, options).
_SUBMIT_OVERHEAD = 128
#: Seconds between connect attempts while the Scheduler is away: doubling, capped.
_RETRY_FIRST = 0.05
_RETRY_CAP = 1.0
#: Seconds a Scheduler is given to say whether it leads, when several are named.
_PROBE_TIMEOUT = 5.0
#: Asks made again of the next leader when the one asked goes away, and how often:
#: reads, and submits (their job ids are the client's own then, so a repeat is no
#: second job).
_REPEATABLE = (AwaitJob, GetJob, GetAttempts, SubmitJob, SubmitJobs)
_TRIES = 3


class Client(anyio.abc.AsyncResource):
    """Submits jobs to the Scheduler at ``scheduler`` (an address or a ref) via ``system``.

    Submits made in one turn of the event loop travel to the Scheduler together, sent
    by a task of the client's own task group, which lives from ``async with`` to
    :meth:`aclose`; submitting outside it is a RuntimeError. Queries need no task and
    work either way. ``middleware`` (after those registered globally) get the submit
    hook of :mod:`actorwork.middleware`.
    """

    def __init__(
        self,
        system: ActorSystem,
        scheduler: str | Sequence[str] | ActorRef,
        *,
        scheduler_name: str = "scheduler",
        registry: WorkRegistry | None = None,
        connect_timeout: float = 10.0,
        middleware: Sequence[object] = (),
    ) -> None:
        if not 0 <= connect_timeout < math.inf:
            raise UsageError(
                f"connect_timeout must be finite seconds, 0 or more, got {connect_timeout!r}"
            )
        self.system = system
        #: Seconds a connect to the Scheduler's address is retried before an ask fails
        #: (0: one try).
        self.connect_timeout = connect_timeout
        self.scheduler = scheduler
        #: The Scheduler addresses tried in turn, following the leader (none for a ref).
        self.addresses = [] if isinstance(scheduler, ActorRef) else split_addresses(scheduler)
        self.scheduler_name = scheduler_name
        self.registry = registry or default_registry
        self.middleware = MiddlewareChain(middleware)
        self._ref: ActorRef | None = scheduler if isinstance(scheduler, ActorRef) else None
        self._resolved_several = False
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
        """Ask the Scheduler; following several, a read or submit whose Scheduler went
        away (or no longer leads) is asked again of the one that leads now."""
        again = self.follows_leader and isinstance(message, _REPEATABLE)
        for tries in itertools.count(1):
            ref = self._ref
            if ref is None or (isinstance(ref, RemoteRef) and not ref.connected):
                ref = await self._connect(self.connect_timeout)
            try:
                reply = await ref.ask(message, timeout=timeout)
                if isinstance(reply, NotLeaderReply):
                    return await self._ask_leader(message, reply, timeout)
            except NoLeader:
                raise
            except (ActorStopped, TransportError):
                if not again or tries == _TRIES:
                    raise
                log.info("scheduler_lost", message=type(message).__name__, tries=tries)
                self._ref = None
                continue
            return reply
        raise AssertionError("unreachable")  # pragma: no cover

    async def _ask_leader(self, message: Message, reply: Any, timeout: float | None) -> Any:
        """Ask again after a Scheduler in standby answered ``reply``, NotLeaderReply.

        It did nothing with the ask, so any ask may be made again: at the leader it
        names, or, while none is named, at the addresses, with backoff, for up to
        ``connect_timeout`` since its first answer; then NoLeader names the addresses.
        """
        standby = _Standby(self.connect_timeout)
        while isinstance(reply, NotLeaderReply):
            self._ref = await self._redirect(reply, standby)
            ref = self._ref or await self._connect(self.connect_timeout)
            reply = await ref.ask(message, timeout=timeout)
        return reply

    async def _redirect(self, reply: NotLeaderReply, standby: _Standby) -> RemoteRef | None:
        """After a standby's ``reply``: the ref of the leader it names, connected; else
        None after a pause (the addresses are tried again); NoLeader once out of
        patience."""
        waited = standby.waited()
        if waited >= standby.patience:
            addresses = self.addresses or [str(self.scheduler)]
            raise NoLeader(
                f"no Scheduler leads at {addresses!r}: answered in standby "
                f"(leader: {reply.leader or 'unknown'}) for {waited:.1f} s "
                f"(connect_timeout={standby.patience!r})",
                standbys=True,
            )
        log.debug("scheduler_in_standby", leader=reply.leader, waited=round(waited, 3))
        if reply.leader and not isinstance(self.scheduler, ActorRef):
            try:
                return await self.system.remote(reply.leader, self.scheduler_name)
            except HandshakeError:
                raise
            except TransportError as exc:
                log.debug("leader_not_reachable", address=reply.leader, error=str(exc))
        await anyio.sleep(standby.pause())
        return None

    @property
    def follows_leader(self) -> bool:
        """Several Scheduler addresses were given, or one name that resolved to several
        IP addresses when last connected: the client (and its event streams) follows
        the one that leads."""
        return len(self.addresses) > 1 or self._resolved_several

    def _own_job_id(self) -> str:
        """A job id drawn here when following, so a submit asked again is the same job;
        else "" (the Scheduler draws it)."""
        return uuid.uuid4().hex if self.follows_leader else ""

    async def _connect(self, patience: float) -> ActorRef:
        """The Scheduler's ref, connecting to its address again until ``patience``
        seconds have passed (a Scheduler starting or restarting does not listen yet).

        Only the connect is retried, so nothing is ever sent twice. A refused handshake
        (wrong secret, TLS) is not retried. Gives up with a TransportError naming the
        address and how long it tried.
        """
        if isinstance(self.scheduler, ActorRef):
            assert self._ref is not None
            return self._ref  # a ref given to the client reconnects on its own
        address = self.scheduler if isinstance(self.scheduler, str) else ", ".join(self.addresses)
        started = time.monotonic()
        delay = _RETRY_FIRST
        tries = 0
        while True:
            tries += 1
            try:
                ref = await self._find_leader(max(patience, _PROBE_TIMEOUT))
            except HandshakeError:
                raise
            except TransportError as exc:
                waited = time.monotonic() - started
                if waited >= patience:
                    raise TransportError(
                        f"cannot reach the Scheduler at {address!r}: tried {tries} "
                        f"time{'s' if tries > 1 else ''} over {waited:.1f} s "
                        f"(connect_timeout={patience!r}); last error: {exc}"
                    ) from exc
                log.debug("scheduler_not_reachable", address=address, tries=tries, error=str(exc))
                if isinstance(exc, NoLeader) and exc.standbys:
                    delay = _RETRY_FIRST  # a standby is about to lead: look again soon
                await anyio.sleep(min(delay, patience - waited))
                delay = min(delay * 2, _RETRY_CAP)
            else:
                self._ref = ref
                return ref

    async def _find_leader(self, timeout: float) -> ActorRef:
        """The ref of the Scheduler that leads, asked at each address in turn.

        One address (that does not resolve to several) is connected to without a
        question, as before leaders were followed; a Scheduler that does not lead
        answers the first ask instead.
        """
        addresses = await resolve_addresses(self.addresses)
        if len(addresses) == 1:
            return await self.system.remote(addresses[0], self.scheduler_name)
        self._resolved_several = len(self.addresses) == 1
        return await find_leader(self.system, addresses, self.scheduler_name, timeout=timeout)

    async def ping(self, *, timeout: float | None = None) -> float:
        """Wait until the Scheduler answers; the seconds its answer took.

        The readiness check: the Scheduler answers only while it leads its store, so
        this returns once jobs can be submitted. It keeps connecting for ``timeout``
        seconds (by default ``connect_timeout``), then raises TransportError naming the
        address; a Scheduler that is connected but does not answer in time raises
        AskTimeout.
        """
        patience = self.connect_timeout if timeout is None else timeout
        started = time.monotonic()
        standby = _Standby(patience)
        while True:
            ref = self._ref
            if ref is None or (isinstance(ref, RemoteRef) and not ref.connected):
                ref = await self._connect(patience)
            left = max(patience - (time.monotonic() - started), 0.001)
            reply = await ref.ask(Ping(b"ready"), timeout=left)
            if not isinstance(reply, NotLeaderReply):
                assert isinstance(reply, Pong), reply
                return time.monotonic() - started
            self._ref = await self._redirect(reply, standby)

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
        context: Mapping[str, str] | None = None,
        depends_on: Iterable[JobHandle | str] = (),
        when: When = "succeeded",
    ) -> JobHandle:
        """Queue ``work`` with ``payload``; returns once the job is durably stored.

        ``None`` options take the work's registered defaults. A ``unique_key`` held by
        a job that has not finished returns that job's handle instead (``created`` is
        then False). ``delay`` or ``at`` hold the job until then. ``context`` travels
        with the job (the work sees it as ``ctx.context``); middleware may add to it,
        or refuse the submit (:class:`~actorwork.errors.SubmitRefused`).

        ``depends_on`` (handles or ids of jobs that exist; JobNotFound names those that
        do not) holds the job ``waiting`` until they end: it runs once they all
        ``succeeded`` (or ``failed``, or ``finished`` however), and ends ``skipped``
        as soon as one can no longer satisfy that. Its work reads their return values
        from ``ctx.parents``.
        """
        if self._task_group is None:
            raise RuntimeError(
                f"the client of {self.scheduler!r} is not open; submit inside "
                "'async with Client(...)' (or through a JobSystem)"
            )
        name, encoded = self._encode(work, payload)
        if job_id is not None and not _JOB_ID.fullmatch(job_id):
            raise UsageError(
                f"job_id {job_id!r} must be 1-128 letters, digits or '_', '.', ':', '-'"
            )
        if retries is not None and retries < 0:
            raise UsageError(f"retries must be 0 or more, got {retries!r}")
        due = _due(delay, at)
        if when not in ("succeeded", "finished", "failed"):
            raise UsageError(f"when must be 'succeeded', 'finished' or 'failed', got {when!r}")
        parents = [p.id if isinstance(p, JobHandle) else p for p in depends_on]
        for parent in parents:
            if not isinstance(parent, str) or not parent:
                raise UsageError(f"depends_on takes job handles or ids, got {parent!r}")
        message = SubmitJob(
            work=name,
            payload=encoded,
            job_id=job_id or self._own_job_id(),
            queue=queue,
            priority=priority,
            max_attempts=None if retries is None else retries + 1,
            timeout=timeout,
            unique_key=unique_key,
            due=due,
            context=dict(context or {}),
            depends_on=parents,
            when=when,
        )
        if self.middleware:
            message = self.middleware.submit(message)
        check(message)  # a value out of bounds fails this submit, not its whole batch
        if len(encoded) >= _BATCH_BYTES:
            reply = await self._ask(message)
        else:
            reply = await self._join_batch(message)
        if isinstance(reply, SubmitRefusedReply):
            raise _REFUSALS.get(reply.error_type, JobError)(reply.reason)
        assert isinstance(reply, SubmittedReply), reply
        return JobHandle(self, reply.job_id, created=reply.created)

    async def submit_many(
        self,
        work: Work | str,
        payloads: Iterable[Any],
        *,
        queue: str | None = None,
        priority: int | None = None,
        retries: int | None = None,
        timeout: float | None = None,
        delay: timedelta | float | None = None,
        at: datetime | None = None,
    ) -> list[JobHandle]:
        """Queue one job of ``work`` per payload, with the same options; their handles,
        in order, once every job is durably stored.

        The jobs travel in few :class:`SubmitJobs` messages (chunked by count and by
        encoded size, below the frame cap), each one commit at the Scheduler: far
        faster than a submit at a time. Every payload is checked before anything is
        sent, so a payload this process can refuse sends nothing; the error names its
        index (``payloads[3]: ...``). A job the Scheduler refuses (its work unknown
        here) raises naming its index too; the chunks before it are stored.
        """
        if retries is not None and retries < 0:
            raise UsageError(f"retries must be 0 or more, got {retries!r}")
        due = _due(delay, at)
        messages: list[SubmitJob] = []
        for index, payload in enumerate(payloads):
            try:
                name, encoded = self._encode(work, payload)
                message = SubmitJob(
                    work=name,
                    payload=encoded,
                    job_id=self._own_job_id(),
                    queue=queue,
                    priority=priority,
                    max_attempts=None if retries is None else retries + 1,
                    timeout=timeout,
                    due=due,
                )
                if self.middleware:
                    message = self.middleware.submit(message)
                check(message)
            except ActorworkError as exc:
                raise type(exc)(f"payloads[{index}]: {exc}") from exc
            messages.append(message)
        budget = min(_MANY_BYTES, self.system.options.max_frame_size // 2)
        handles: list[JobHandle] = []
        for chunk in _chunks(messages, budget):
            if len(chunk) == 1:
                replies = [await self._ask(chunk[0])]
            else:
                reply = await self._ask(SubmitJobs(chunk))
                assert isinstance(reply, SubmitJobsReply), reply
                replies = list(reply.replies)
            for answer in replies:
                if isinstance(answer, SubmitRefusedReply):
                    error = _REFUSALS.get(answer.error_type, JobError)
                    raise error(
                        f"payloads[{len(handles)}]: {answer.reason} "
                        f"({len(handles)} jobs before it were submitted)"
                    )
                handles.append(JobHandle(self, answer.job_id, created=answer.created))
        return handles

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
            raise UsageError(f"work must be a @work function or its name, got {work!r}")
        if work in self.registry:
            return work, self.registry.get(work).encode_payload(payload)
        try:
            return work, msgspec.msgpack.encode(payload)
        except (TypeError, msgspec.EncodeError) as exc:
            raise PayloadError(f"payload for work {work!r} cannot be encoded: {exc}") from exc

    async def map(
        self,
        work: Work | str,
        source: Iterable[Any] | AsyncIterable[Any],
        *,
        window: int = 16,
        ordered: bool = False,
        **options: Any,
    ) -> AsyncIterator[Any]:
        """Submit a job of ``work`` per item of ``source`` and yield their return values.

        ``source`` is any iterable or async iterable (a generator, a queue wrapped as
        an async iterator that stays open): an item is taken only when there is room,
        so at most ``window`` jobs are in flight — submitted and not yet yielded.
        Values come as jobs finish (``ordered=False``) or in the order of the items
        (``ordered=True``), while the source waits for more. A job that did not
        succeed raises its JobFailed where its value would come, as does an error of
        the source; leaving the loop early stops reading and waiting (the jobs
        submitted go on). ``options`` go to :meth:`submit`.
        """
        if window < 1:
            raise UsageError(f"window must be at least 1, got {window!r}")
        if self._task_group is None:
            raise RuntimeError(
                f"the client of {self.scheduler!r} is not open; map inside "
                "'async with Client(...)' (or through a JobSystem)"
            )
        room = anyio.Semaphore(window)
        send, receive = anyio.create_memory_object_stream[tuple[int, Any, bool]](window + 1)
        run = _MapRun()
        self._task_group.start_soon(
            self._map_feed, run, _aiter(source), room, send, (work, options)
        )
        done: dict[int, tuple[Any, bool]] = {}
        given, total = 0, -1
        try:
            with receive:
                while given != total:
                    index, value, ok = await receive.receive()
                    if index == _END:
                        total = value
                        continue
                    if index == _SOURCE_FAILED:
                        raise value
                    done[index] = (value, ok)
                    ready = [given] if ordered else [index]
                    while ready and ready[0] in done:
                        value, ok = done.pop(ready[0])
                        given += 1
                        room.release()
                        yield _value_or_raise(value, ok)
                        ready = [given] if ordered else []
        finally:
            run.stop()

    async def _map_feed(
        self,
        run: _MapRun,
        items: AsyncGenerator[Any],
        room: anyio.Semaphore,
        send: MemoryObjectSendStream[tuple[int, Any, bool]],
        job: tuple[Work | str, dict[str, Any]],
    ) -> None:
        """Take items of a :meth:`map` as room frees, and start a job for each."""
        assert self._task_group is not None
        count = 0
        with run.scope(), send:
            try:
                while True:
                    await room.acquire()
                    try:
                        item = await anext(items)
                    except StopAsyncIteration:
                        break
                    except Exception as exc:  # noqa: BLE001 - raised in the map's loop
                        await send.send((_SOURCE_FAILED, exc, False))
                        return
                    self._task_group.start_soon(
                        self._map_one, run, send.clone(), (count, item), job
                    )
                    count += 1
                await send.send((_END, count, True))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # the map was left early
            finally:
                with anyio.CancelScope(shield=True):
                    await items.aclose()

    async def _map_one(
        self,
        run: _MapRun,
        send: MemoryObjectSendStream[tuple[int, Any, bool]],
        entry: tuple[int, Any],
        job: tuple[Work | str, dict[str, Any]],
    ) -> None:
        """One item of :meth:`map`: submit it, await its value, hand it over."""
        (index, item), (work, options) = entry, job
        with run.scope(), send:
            try:
                handle = await self.submit(work, item, **options)
                value, ok = await handle.result(), True
            except Exception as exc:  # noqa: BLE001 - raised where the value would come
                value, ok = exc, False
            try:
                await send.send((index, value, ok))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # the map was left early

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

    # --- workflows ------------------------------------------------------------------------

    async def submit_workflow(
        self,
        flow: Workflow,
        payload: Any = None,
        *,
        workflow_id: str | None = None,
        policy: str | None = None,
        queue: str | None = None,
    ) -> str:
        """Build ``flow``'s tree for ``payload`` and submit its nodes; the workflow's id
        once they are durably stored (see :mod:`actorwork.workflow`).

        ``policy`` (``stop`` or ``finish``) overrides the workflow's. The nodes the
        workflow adds itself (expanders, gathering nodes) go to ``queue`` (by default
        ``default``): give the queue of a Pool that serves the workflow. Submitting an id
        again submits nothing new: its nodes exist. A node the Scheduler refuses (its
        work unknown there) raises naming its path; the nodes before it are stored, and
        :meth:`cancel_workflow` ends them.
        """
        if not isinstance(flow, Workflow):
            raise UsageError(f"submit_workflow takes a @workflow function, got {flow!r}")
        chosen = policy or flow.policy
        if chosen not in ("stop", "finish"):
            raise UsageError(f"workflow policy must be 'stop' or 'finish', got {chosen!r}")
        workflow_id = workflow_id or f"wf-{uuid.uuid4().hex[:20]}"
        if not _JOB_ID.fullmatch(workflow_id) or ":" in workflow_id:
            raise UsageError(
                f"workflow_id {workflow_id!r} must be 1-128 letters, digits or '_', '.', '-'"
            )
        submits = compile_workflow(flow, payload, workflow_id, chosen, queue=queue)
        budget = min(_MANY_BYTES, self.system.options.max_frame_size // 2)
        for chunk in _chunks(submits, budget):
            reply = await self._ask(SubmitJobs(chunk))
            assert isinstance(reply, SubmitJobsReply), reply
            for answer, submit in zip(reply.replies, chunk, strict=True):
                if isinstance(answer, SubmitRefusedReply):
                    error = _REFUSALS.get(answer.error_type, JobError)
                    raise error(f"workflow node {submit.path!r}: {answer.reason}")
        return workflow_id

    async def workflow(self, workflow_id: str) -> WorkflowView:
        """The tree of a workflow: every node with its path, status, attempts, result and
        times, and the workflow's status; JobNotFound if it has no node."""
        jobs = await self._workflow_jobs(workflow_id)
        if not jobs:
            raise JobNotFound(f"unknown workflow {workflow_id!r}")
        return workflow_view(workflow_id, jobs)

    async def cancel_workflow(
        self, workflow_id: str, reason: str = "workflow cancelled by request"
    ) -> WorkflowView:
        """Cancel every node of a workflow that has not ended (running ones are told to
        stop); nodes that ended stay as they are. The tree after."""
        while True:
            jobs = await self._workflow_jobs(workflow_id)
            live = [job for job in jobs if job.status not in TERMINAL]
            if not live:
                break
            # An expander may add nodes until it is cancelled itself: look again.
            for job in live:
                await self._ask(CancelJob(job.id, reason))
        if not jobs:
            raise JobNotFound(f"unknown workflow {workflow_id!r}")
        return workflow_view(workflow_id, jobs)

    async def retry_workflow(self, workflow_id: str) -> WorkflowView:
        """Run again the nodes of a workflow that failed, were skipped or cancelled —
        parents first, so each waits for those it depends on — and only those: nodes
        that succeeded keep their results. The tree after."""
        for job_id in retry_order(await self._workflow_jobs(workflow_id)):
            await self.retry(job_id)
        return await self.workflow(workflow_id)

    async def _workflow_jobs(self, workflow_id: str) -> list[JobView]:
        """The nodes of a workflow, in the order they were added."""
        found: list[JobView] = []
        before: int | None = None
        while True:
            reply = await self._ask(ListJobs(limit=_PAGE, before=before, workflow=workflow_id))
            assert isinstance(reply, JobListReply), reply
            found += reply.jobs
            if reply.next is None or not reply.jobs:
                return found[::-1]
            before = reply.next

    # --- events ---------------------------------------------------------------------------

    def events(
        self,
        *,
        job_id: str | None = None,
        work: str | None = None,
        queue: str | None = None,
        status: str | None = None,
        kinds: Iterable[str] | None = None,
        buffer: int = 1000,
        workflow: str | None = None,
    ) -> EventStream:
        """The Scheduler's events as they happen, those passing the filter (see
        :mod:`actorwork.events`): an async iterator, and an async context manager whose
        exit unsubscribes (so does :meth:`EventStream.aclose`)::

            async with client.events(job_id=handle.id) as events:
                async for event in events:
                    print(event)

        At most ``buffer`` events wait for this subscriber, at the Scheduler and here;
        past that they are dropped and an :class:`~actorwork.events.EventsLost` says how
        many (list the jobs again to resync). ValueError names an unknown kind.
        ``workflow`` keeps the events of that workflow's nodes, each tagged with its path.
        Following several Schedulers, a stream lives through a failover: it subscribes
        again at the new leader and yields an EventsLost before its events
        (:mod:`actorwork.event_stream`).
        """
        if buffer < 1:
            raise UsageError(f"buffer must be at least 1, got {buffer!r}")
        filter = make_filter(
            job_id=job_id, work=work, queue=queue, status=status, kinds=kinds, workflow=workflow
        )
        return EventStream(self, filter, buffer)

    async def scheduler_ref(self, *, again: bool = False) -> ActorRef:
        """The Scheduler's ref, connecting to it first if needed; ``again`` forgets the
        one known and finds the leader anew (its link was lost)."""
        if again and not isinstance(self.scheduler, ActorRef):
            self._ref = None
        ref = self._ref
        if ref is None or (isinstance(ref, RemoteRef) and not ref.connected):
            ref = await self._connect(self.connect_timeout)
        return ref

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
        count: bool = False,
    ) -> JobListReply:
        """One page of jobs, newest first; its ``next`` is the ``before`` of the next page.

        ``since`` and ``until`` bound when the jobs were created (wall-clock seconds).
        With ``count``, the reply's ``count`` is how many jobs the filters match.
        """
        message = ListJobs(
            status, queue, limit, before, work=work, since=since, until=until, count=count
        )
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
            raise UsageError(f"page must be at least 1, got {page!r}")
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


def _chunks(messages: list[SubmitJob], budget: int) -> list[list[SubmitJob]]:
    """``messages`` in order, cut into chunks of at most ``_MANY_JOBS`` submits and
    about ``budget`` encoded bytes; a submit larger than that alone."""
    chunks: list[list[SubmitJob]] = []
    chunk: list[SubmitJob] = []
    size = 0
    for message in messages:
        cost = (
            len(message.payload) + len(message.work) + (len(message.queue or "")) + _SUBMIT_OVERHEAD
        )
        if chunk and (len(chunk) >= _MANY_JOBS or size + cost > budget):
            chunks.append(chunk)
            chunk, size = [], 0
        chunk.append(message)
        size += cost
    if chunk:
        chunks.append(chunk)
    return chunks


class _MapRun:
    """The tasks of one :meth:`Client.map`: each runs in a cancel scope of its own,
    cancelled when the map ends (or at once, for a task that starts after)."""

    __slots__ = ("scopes", "stopped")

    def __init__(self) -> None:
        self.scopes: list[anyio.CancelScope] = []
        self.stopped = False

    def scope(self) -> anyio.CancelScope:
        scope = anyio.CancelScope()
        if self.stopped:
            scope.cancel()
        else:
            self.scopes.append(scope)
        return scope

    def stop(self) -> None:
        self.stopped = True
        for scope in self.scopes:
            scope.cancel()
        self.scopes.clear()


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


class _Standby:
    """How long one ask has been answered by Schedulers in standby, and the pause
    before it is made again (doubling from ``_RETRY_FIRST`` to ``_RETRY_CAP``)."""

    def __init__(self, patience: float) -> None:
        self.patience = patience
        self._since: float | None = None
        self._delay = _RETRY_FIRST

    def waited(self) -> float:
        """Seconds since the first standby answer (0 at the first)."""
        now = time.monotonic()
        if self._since is None:
            self._since = now
        return now - self._since

    def pause(self) -> float:
        """Seconds to wait before asking again, never past the patience."""
        delay, self._delay = self._delay, min(self._delay * 2, _RETRY_CAP)
        return max(0.0, min(delay, self.patience - self.waited()))


class JobHandle:
    """One submitted job: await it, query it, cancel it."""

    def __init__(self, client: Client, job_id: str, *, created: bool = True) -> None:
        self.client = client
        self.id = job_id
        #: False when a unique key matched an existing job.
        self.created = created

    def __await__(self) -> Generator[Any, None, Any]:
        """``await handle`` is ``await handle.result()``: the value, or JobFailed."""
        return self.result().__await__()

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


async def _aiter(source: Iterable[Any] | AsyncIterable[Any]) -> AsyncGenerator[Any]:
    """``source`` as an async iterator, read one item per request."""
    if isinstance(source, AsyncIterable):
        async for item in source:
            yield item
    else:
        for item in source:
            yield item


def _value_or_raise(value: Any, ok: bool) -> Any:
    if not ok:
        raise value
    return value


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
        raise UsageError("give delay or at, not both")
    if at is not None:
        if at.tzinfo is None:
            raise UsageError(f"at={at!r} has no time zone; pass an aware datetime")
        return at.timestamp()
    if delay is None:
        return None
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
    if seconds < 0:
        raise UsageError(f"delay must not be negative, got {delay!r}")
    return time.time() + seconds
