"""The Scheduler actor: owns the queues, the job store and the clock; hands work out.

A thin shell around :class:`~actorwork.scheduler.state.SchedulerState`. Each message
becomes effects; the persistent ones gather in a batch that one task commits to the
store (a group commit: while one commit runs, the next batch fills), and the
outbound ones — dispatches, acknowledgements, replies — leave only after the commit
that made them true. A Scheduler killed at any moment has promised nothing it did
not store.

Pools are reached through the ref they introduced themselves with
(:class:`PoolReady`); a send that fails marks the pool lost until it says it is
ready again, and a dispatch that could not be delivered is queued again at once.

Cron schedules (:mod:`actorwork.scheduler.cron`) fire on the same tick as leases and retries.
Finished jobs past their retention (:class:`~actorwork.stores.base.Retention`) are
forgotten by a task of their own, a small batch per transaction, never a live one.
A Scheduler leads its store before it starts (:mod:`actorwork.scheduler.leadership`); if it
finds it was taken over, it writes and sends nothing more, sets :attr:`deposed`
and waits to be stopped. A Scheduler that cannot commit steps down instead of
leading a store it no longer serves: when a commit raises anything but a
:class:`~actorwork.errors.StoreError`, or a store error outlasts the leader lease, it
fails the asks that waited for that commit, gives up its lease (so a standby takes over
at once), sets :attr:`deposed` and stops; ``actorwork scheduler`` then exits. So it does
too when it could not renew its lease within the leader lease (the store unreachable):
by then a standby may lead.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, assert_never

import anyio
import msgspec

from actorwork._log import get_logger
from actorwork.clock import system_now
from actorwork.errors import (
    ActorworkError,
    JobNotFound,
    LeadershipLost,
    PayloadError,
    ScheduleError,
    StoreError,
    WorkNotFound,
)
from actorwork.events import (
    Event,
    JobDeleted,
    PoolJoined,
    PoolLeft,
    Subscribe,
    SubscribedReply,
    Unsubscribe,
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
    JobCount,
    JobKey,
    JobListReply,
    JobOutput,
    JobProgressed,
    JobReply,
    JobView,
    ListJobs,
    ListPools,
    ListQueues,
    ListSchedules,
    Message,
    PauseQueue,
    Ping,
    Pong,
    PoolHeartbeat,
    PoolListReply,
    PoolReady,
    QueueListReply,
    RemoveSchedule,
    ReportResult,
    ReportResults,
    RequestWork,
    ResultAcknowledged,
    ResultsAcknowledged,
    RetryJob,
    RunJob,
    RunJobs,
    RunSchedule,
    ScheduleListReply,
    StatsReply,
    SubmitJob,
    SubmitJobs,
    SubmitRefusedReply,
    Terminated,
    WorkResult,
)
from actorwork.middleware import MiddlewareChain
from actorwork.middleware import load as load_middleware
from actorwork.runtime import Actor, ActorRef, Reply
from actorwork.scheduler.cron import Cron
from actorwork.scheduler.leadership import holder_name, lead
from actorwork.scheduler.state import (
    Backoff,
    DropSchedule,
    Effect,
    Finished,
    Forget,
    Job,
    Now,
    Persist,
    Record,
    SaveSchedule,
    SchedulerState,
    Send,
    SetFence,
    SetPaused,
)
from actorwork.scheduler.state import Reply as ReplyEffect
from actorwork.scheduler.subscribers import (
    Subscribers,
    events_of,
    output_events,
    result_events,
)
from actorwork.scheduler.waiters import Gather, Slot, Waiters
from actorwork.schedules import Schedule
from actorwork.stores import JobStore, open_store
from actorwork.stores.base import Retention
from actorwork.work import WorkRegistry, default_registry
from actorwork.workflow import EXPAND, Expansion

__all__ = ["Scheduler", "SchedulerInbound"]

log = get_logger(__name__)

SchedulerInbound = (
    SubmitJob
    | SubmitJobs
    | GetJob
    | AwaitJob
    | CancelJob
    | RetryJob
    | DeleteJob
    | ListJobs
    | PoolReady
    | RequestWork
    | PoolHeartbeat
    | JobProgressed
    | ReportResult
    | ReportResults
    | GetAttempts
    | AddSchedule
    | RemoveSchedule
    | EnableSchedule
    | ListSchedules
    | Ping
    | JobOutput
    | Subscribe
    | Unsubscribe
    | Terminated
    | ListQueues
    | PauseQueue
    | ListPools
    | GetStats
    | RunSchedule
)

#: Effects bound to where their reply goes: the handle of the ask that made them.
_Pending = tuple[list[Effect], Reply | None]


_expansion = msgspec.msgpack.Decoder(Expansion)

_RECENT = 10_000
#: The statuses of a job a retry runs again.
RETRYABLE = ("dead", "failed", "cancelled", "skipped")
#: The most jobs one page of a listing holds, whatever the limit asked.
_PAGE = 500


# Job ids are 128 random bits in hex, like a uuid4's, from a generator seeded by the OS
# (again in a forked child): a uuid4 asks the kernel for every id, which costs more than
# the rest of a no-op job's submit. Ids need to be unique, not unguessable.
_ids = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))


def new_job_id() -> str:
    """A fresh job id: 32 hex digits."""
    return f"{_ids.getrandbits(128):032x}"


class Scheduler(Actor):
    """Queues, leases, retries and results; see the module docstring.

    ``store`` is a store URL or a SQLite file (or a :class:`~actorwork.stores.JobStore`);
    ``lease`` is how long a
    dispatched attempt may go without a heartbeat before it counts as lost;
    ``modules`` are imported at start so the Scheduler knows the works it checks
    submits against. After a restart, attempts that were running get
    ``restart_grace`` seconds on top of their lease for their pools to reconnect
    (a Pool's reconnect backoff stops growing at 5 s). ``schedules`` are the cron
    schedules of the config; ``leader_lease`` is how long it holds the store without
    renewing (see :mod:`actorwork.scheduler.leadership`); ``retention`` how long
    finished jobs are kept (see :meth:`prune`). ``middleware`` (objects, or
    ``"pkg.mod:Thing"`` paths loaded at start) get the dispatch and commit hooks of
    :mod:`actorwork.middleware`. ``advertise`` is the address Pools and clients reach
    it at, which Schedulers in standby on the same store answer with.

    Events (:mod:`actorwork.events`) are made only while someone subscribes, from the
    effects as they are applied, and published once their batch is committed; what a
    running attempt reports (:class:`JobOutput`) is published as it arrives.
    """

    def __init__(
        self,
        *,
        store: str | Path | JobStore = "actorwork.db",
        synchronous: str = "normal",
        lease: float = 30.0,
        backoff: Backoff | None = None,
        registry: WorkRegistry | None = None,
        modules: list[str] | tuple[str, ...] = (),
        tick: float = 0.05,
        clock: Callable[[], Now] = system_now,
        restart_grace: float = 5.0,
        schedules: Sequence[Schedule] = (),
        leader_lease: float = 10.0,
        retention: Retention | None = None,
        middleware: Sequence[object | str] = (),
        advertise: str = "",
    ) -> None:
        if lease <= 0:
            raise ValueError(f"lease must be positive, got {lease!r}")
        if leader_lease <= 0:
            raise ValueError(f"leader_lease must be positive, got {leader_lease!r}")
        self.store = (
            open_store(str(store), synchronous=synchronous)
            if isinstance(store, str | Path)
            else store
        )
        self.state = SchedulerState(lease=lease, backoff=backoff or Backoff())
        self.registry = registry or default_registry
        self.modules = list(modules)
        self.tick = tick
        self.clock = clock
        self.restart_grace = restart_grace
        self.schedules = list(schedules)
        self.leader_lease = leader_lease
        self.retention = retention or Retention()
        #: This Scheduler in the store's leader row, with the address it advertises.
        self.holder = holder_name(advertise)
        self.cron = Cron(self.registry, self.state.submit, self.state.next_seq)
        #: Set when this Scheduler no longer leads: another took the store over, or it
        #: stepped down because it could not commit. It does nothing more.
        self.deposed = anyio.Event()
        #: Why :attr:`deposed` was set.
        self.deposed_reason = ""
        #: When the lease runs out by this host's monotonic clock, unless renewed.
        self._lease_until = math.inf
        self._cron_now = False
        self.pools: dict[str, ActorRef] = {}
        self._pending: list[_Pending] = []
        self._wake = anyio.Event()
        self._waiters = Waiters()
        #: Views of jobs finished lately, so awaiting a result needs no store read.
        self._recent: OrderedDict[str, JobView] = OrderedDict()
        #: The jobs the last pruning pass forgot: a retry that read one of them from
        #: the store before it was forgotten must not bring it back without its history.
        self._pruned: set[str] = set()
        self.middleware_spec = list(middleware)
        self.middleware = MiddlewareChain()
        #: Who listens to the events, and the events of the pending batch, to publish
        #: once it is committed (empty while no one listens).
        self.subscribers = Subscribers(lambda: self.clock().wall)
        self._unpublished: list[Event] = []
        #: Middleware hooks of the pending batch, to call once it is committed.
        self._hooks: list[tuple[Callable[[Any], None], Any]] = []
        #: Attempts whose start a subscriber was told of (from their live output).
        self._told_started: set[JobKey] = set()
        #: Jobs finished since start by (work, queue, status); readings for GetStats.
        self._finished_counts: Counter[tuple[str, str, str]] = Counter()
        self._commits = 0
        self._commit_seconds = 0.0
        self._commit_last = 0.0
        self._loop_lag = 0.0

    # --- lifecycle ------------------------------------------------------------------

    async def on_start(self) -> None:
        self.registry.import_modules(self.modules)
        paths = [item for item in self.middleware_spec if isinstance(item, str)]
        objects = [item for item in self.middleware_spec if not isinstance(item, str)]
        self.middleware = MiddlewareChain([*objects, *load_middleware(paths)])
        if not self.store.is_open:
            await self.store.open()
        if self.store.epoch is None:
            await lead(self.store, lease=self.leader_lease, holder=self.holder)
        # Taken before the first renewal: until then, the lease counts from now.
        self._lease_until = time.monotonic() + self.leader_lease
        await self._renew()
        jobs = await self.store.live_jobs()
        await self._restore(jobs)
        self.state.paused.update(await self.store.paused_queues())
        now = self.clock()
        loaded = self.state.load(
            jobs, now, last_seq=await self.store.max_seq(), grace=self.restart_grace
        )
        self._apply(loaded, None)
        self._apply(self.cron.load(await self.store.schedules(), self.schedules, jobs, now), None)
        self.log.info(
            "scheduler_started",
            store=self.store.path,
            live_jobs=len(jobs),
            schedules=len(self.cron.book),
        )
        self.start_soon(self._flush_forever)
        self.start_soon(self._tick_forever)
        if self.retention.interval > 0:
            self.start_soon(self._prune_forever)

    async def on_stop(self) -> None:
        with anyio.CancelScope(shield=True):
            batch, self._pending = self._pending, []
            try:
                if self.deposed.is_set():
                    raise LeadershipLost("another Scheduler leads the store")  # noqa: TRY301
                await self.store.apply([effect for effects, _ in batch for effect in effects])
                await self.store.release()
            except LeadershipLost:
                pass  # nothing more of this Scheduler's may be written
            except ActorworkError:
                log.exception("store_final_commit_failed")
            else:
                for effects, handle in batch:
                    for effect in effects:
                        if isinstance(effect, ReplyEffect) and handle is not None:
                            handle.resolve(effect.message)
            for handle in self._waiters.clear():
                handle.fail(ActorworkError("the scheduler stopped"))
            await self.store.aclose()

    # --- messages -------------------------------------------------------------------

    async def receive(self, message: SchedulerInbound) -> Message | None:
        if self.deposed.is_set():
            raise LeadershipLost(
                f"this Scheduler no longer leads the store {self.store.path!r}: "
                f"{self.deposed_reason}"
            )
        now = self.clock()
        state = self.state
        match message:
            case SubmitJob():
                handle = self.defer_reply()
                finished = await self._finished(message.job_id)
                job = self._new_job(message, now)
                if not isinstance(job, SubmitRefusedReply) and not finished:
                    job = await self._parents(job) or job
                if not isinstance(job, SubmitRefusedReply):
                    self._apply(state.submit(job, now, finished=finished), handle)
                elif handle is not None:
                    handle.resolve(job)
            case SubmitJobs(jobs=submits):
                await self._submit_many(submits, now)
            case GetJob(job_id=job_id):
                return JobReply(await self._view(job_id))
            case AwaitJob(job_id=job_id, wait=wait):
                view = await self._view(job_id)
                if view is not None and view.status not in TERMINAL and job_id not in state.jobs:
                    # It finished while the store was read: its final view is in _recent,
                    # or it is not carried out yet, and then the waiter is answered with it.
                    view = self._recent.get(job_id, view)
                if view is None or view.status in TERMINAL or wait <= 0:
                    return JobReply(view)
                handle = self.defer_reply()
                if handle is not None:
                    self._waiters.add(job_id, handle, now.mono + wait)
            case CancelJob() | RetryJob() | DeleteJob():
                return await self._change(message, now)
            case ListJobs():
                return await self._list(message)
            case GetAttempts(job_id=job_id):
                rows = await self.store.attempts(job_id)
                return AttemptsReply([AttemptRecord(*row) for row in rows])
            case PoolReady():
                self._pool_ready(message, now)
            case RequestWork(pool=pool, slots=slots):
                self._apply(state.request_work(pool, slots, now), None)
            case PoolHeartbeat(pool=pool, running=running, works=works, unresponsive=stuck):
                effects = state.heartbeat(
                    pool, running, now, works=works, unresponsive=stuck, backlog=message.backlog
                )
                self._apply(effects, None)
            case JobProgressed(job_id=job_id, attempt=attempt, fraction=fraction, message=text):
                state.progress(JobKey(job_id, attempt), fraction, text)
            case JobOutput():
                self._output(message)
            case Subscribe() | Unsubscribe() | Terminated():
                return self._subscription(message)
            case ReportResult(result=result):
                self._results([result], now)
            case ReportResults(results=results):
                self._results(results, now)
            case AddSchedule() | RemoveSchedule() | EnableSchedule() | ListSchedules():
                return self._schedules(message, now)
            case ListQueues() | PauseQueue() | ListPools() | GetStats() | RunSchedule() | Ping():
                return await self._operate(message, now)
            case _:
                assert_never(message)
        return None

    async def _restore(self, jobs: list[Job]) -> None:
        """What the store does not keep of live jobs: their limits (from the registry)
        and how their parents ended (from the parents' rows)."""
        parents = {parent for job in jobs for parent in job.depends_on}
        outcomes = await self.store.outcomes(sorted(parents)) if parents else {}
        for job in jobs:
            if job.work in self.registry:
                work = self.registry.get(job.work)
                try:
                    job.limit_key, job.limit = work.limit_key(job.payload), work.limit
                except PayloadError as exc:
                    log.warning("job_limit_unknown", job_id=job.id, error=str(exc))
            for parent in job.depends_on:
                if parent in outcomes:
                    job.parents[parent] = outcomes[parent]

    async def _parents(self, job: Job) -> SubmitRefusedReply | None:
        """Fill in how the parents of a new job that ended did; refuse unknown parents."""
        state = self.state
        if not job.depends_on or job.id in state.jobs:
            return None
        unknown = [p for p in job.depends_on if p not in state.jobs and state.outcome(p) is None]
        if unknown:
            stored = await self.store.outcomes(unknown)
            job.parents.update(stored)
            unknown = [p for p in unknown if p not in stored and p not in state.jobs]
        if unknown:
            names = ", ".join(repr(p) for p in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            return SubmitRefusedReply(
                JobNotFound.__name__, f"depends_on names unknown jobs: {names}{more}"
            )
        return None

    def _pool_ready(self, ready: PoolReady, now: Now) -> None:
        pool = ready.pool
        if self.sender is None:
            raise ValueError(f"PoolReady from {pool!r} came without a sender")
        self.pools[pool] = self.sender
        known = self.state.pools.get(pool)
        if known is not None and known.incarnation not in ("", ready.incarnation):
            log.warning("pool_restarted", pool=pool, incarnation=ready.incarnation or None)
        log.info(
            "pool_ready",
            pool=pool,
            queues=ready.queues,
            free=ready.free,
            running=len(ready.running),
            works=None if ready.works is None else len(ready.works),
        )
        effects = self.state.pool_ready(
            pool,
            ready.queues,
            ready.free,
            ready.running,
            now,
            works=ready.works,
            incarnation=ready.incarnation,
            capacity=ready.capacity,
        )
        self._apply(effects, None)
        if self.subscribers:
            joined = PoolJoined(pool=pool, queues=ready.queues, free=ready.free)
            self.subscribers.publish([joined])

    async def _operate(
        self,
        message: ListQueues | PauseQueue | ListPools | GetStats | RunSchedule | Ping,
        now: Now,
    ) -> Message | None:
        """What an operator asks: readiness, queues (and pausing them), pools, readings,
        run a schedule now."""
        state = self.state
        match message:
            case Ping(payload=payload):  # readiness: answered only while this one leads
                return Pong(payload)
            case ListQueues():
                return QueueListReply(state.queues(now))
            case PauseQueue(queue=queue, paused=paused):
                # Answered once stored: a Scheduler restarted after the answer keeps it.
                effects = state.pause(queue, paused, now)
                view = QueueListReply([q for q in state.queues(now) if q.name == queue])
                self._apply([*effects, ReplyEffect(view)], self.defer_reply())
                log.info("queue_paused" if paused else "queue_resumed", queue=queue)
                return None
            case ListPools():
                return PoolListReply(state.pool_views(now))
            case GetStats():
                return self._stats()
            case RunSchedule(name=name):
                return await self._run_schedule(name, now)
            case _:
                assert_never(message)

    def _stats(self) -> StatsReply:
        readings = self.state.readings
        live: Counter[tuple[str, str, str]] = Counter(
            (job.work, job.queue, job.status) for job in self.state.jobs.values()
        )
        return StatsReply(
            live=[JobCount(*key, count) for key, count in sorted(live.items())],
            finished=[
                JobCount(*key, count) for key, count in sorted(self._finished_counts.items())
            ],
            commits=self._commits,
            commit_seconds=self._commit_seconds,
            commit_last=self._commit_last,
            loop_lag=self._loop_lag,
            commit_times=readings.commits.timings(),
            queue_waits=readings.listed(readings.queue_waits),
            run_times=readings.listed(readings.run_times),
        )

    async def _run_schedule(self, name: str, now: Now) -> Message | None:
        """Submit schedule ``name``'s job now, as a client's submit of its work would be."""
        if name not in self.cron.book:
            return SubmitRefusedReply(
                "ScheduleNotFound", f"no schedule {name!r} is known to the scheduler"
            )
        schedule = self.cron.book.get(name)
        submit = SubmitJob(
            work=schedule.work,
            payload=schedule.payload,
            queue=schedule.queue,
            priority=schedule.priority,
            max_attempts=None if schedule.retries is None else schedule.retries + 1,
            timeout=schedule.timeout,
        )
        job = self._new_job(submit, now)
        if isinstance(job, SubmitRefusedReply):
            return job
        log.info("schedule_run_now", schedule=name, job_id=job.id)
        self._apply(self.state.submit(job, now), None)
        await self._reply_after_commit(job.id)
        return None

    async def _submit_many(self, submits: list[SubmitJob], now: Now) -> None:
        handle = self.defer_reply()
        gather = None if handle is None else Gather(handle, len(submits))
        for index, submit in enumerate(submits):
            slot = None if gather is None else Slot(gather, index)
            finished = await self._finished(submit.job_id)
            job = self._new_job(submit, now)
            if not isinstance(job, SubmitRefusedReply) and not finished:
                job = await self._parents(job) or job
            if not isinstance(job, SubmitRefusedReply):
                self._apply(self.state.submit(job, now, finished=finished), slot)
            elif slot is not None:
                slot.resolve(job)

    def _schedules(
        self, message: AddSchedule | RemoveSchedule | EnableSchedule | ListSchedules, now: Now
    ) -> Message | None:
        """Change or list the cron schedules; a change is answered once it is stored."""
        cron = self.cron
        try:
            match message:
                case AddSchedule(schedule=schedule):
                    effects, name = cron.add(schedule, now), schedule.name
                case RemoveSchedule(name=name):
                    effects = cron.remove(name)
                case EnableSchedule(name=name, enabled=enabled):
                    effects = cron.enable(name, enabled, now)
                case ListSchedules(count=count):
                    return ScheduleListReply(cron.views(now, count))
                case _:
                    assert_never(message)
        except ScheduleError as exc:
            return SubmitRefusedReply(type(exc).__name__, str(exc))
        self._apply(effects, None)
        views = cron.views(now, name=name)
        self._pending.append(([ReplyEffect(ScheduleListReply(views))], self.defer_reply()))
        self._wake.set()
        return None

    async def _change(self, message: CancelJob | RetryJob | DeleteJob, now: Now) -> Message | None:
        """Cancel, retry or delete a job; answered with its view once that is stored."""
        state, job_id = self.state, message.job_id
        match message:
            case CancelJob(reason=reason) if job_id in state.jobs:
                effects = state.cancel(job_id, reason, now)
                self._apply(effects, None)
                final = next(e.view for e in effects if isinstance(e, Finished))
                await self._reply_after_commit(job_id, final)
                return None
            case RetryJob() if job_id not in state.jobs:
                stored = await self.store.get(job_id)
                if job_id in self._pruned:
                    stored = None
                if stored is not None and stored.status in RETRYABLE:
                    await self._parents(stored)  # how those that ended did, for its gate
                    self._apply(state.revive(stored, now), None)
                    await self._reply_after_commit(job_id)
                    return None
            case DeleteJob():
                view = await self._view(job_id)
                if view is not None and view.status in TERMINAL:
                    self._apply([Forget(job_id)], None)
                    if self.subscribers:
                        deleted = JobDeleted(job_id=job_id, work=view.work, queue=view.queue)
                        self._unpublished.append(deleted)
                    await self._reply_after_commit(job_id, view)
                    return None
            case _:
                pass
        return JobReply(await self._view(job_id))

    def _results(self, results: list[WorkResult], now: Now) -> None:
        for result in results:
            pool = result.pool
            if self.sender is not None:  # the pool's latest link: it may report before PoolReady
                self.pools[pool] = self.sender
            if self.subscribers:
                key = result.key
                started = key not in self._told_started
                self._told_started.discard(key)
                job = self.state.jobs.get(result.job_id)
                self.subscribers.publish(result_events(result, job, started))
            applied = result
            if result.outcome == "succeeded" and result.job_id in self.state.jobs:
                applied = self._expand(result, now)
            self._apply(self.state.result(pool, applied, now), None)

    def _expand(self, result: WorkResult, now: Now) -> WorkResult:
        """Add the nodes a workflow's expander decided on, before its result is applied,
        so the group's gathering node waits for them when the expander ends; the result
        is made a failure if they cannot be added (named in its error)."""
        job = self.state.jobs[result.job_id]
        current = job.status == "running" and job.attempt == result.attempt
        if job.work != EXPAND or not current or result.value is None:
            return result
        try:
            expansion = _expansion.decode(result.value)
            jobs = [self._build_job(submit, now) for submit in expansion.jobs]
            skipped = [self._build_job(submit, now) for submit in expansion.skipped]
        except (msgspec.DecodeError, msgspec.ValidationError, ActorworkError, ValueError) as exc:
            error = f"workflow node {job.path!r} could not add its nodes: {exc}"
            return msgspec.structs.replace(result, outcome="failed", value=None, error=error)
        for child in jobs:
            # Its parents are the expander, live, or the node before it, whose outcome
            # the expander's own gate learnt.
            child.parents.update((p, job.parents[p]) for p in child.depends_on if p in job.parents)
            self._apply(self.state.submit(child, now), None)
        for child in skipped:
            self._apply(self.state.skip(child, expansion.reason, now), None)
        self._apply(self.state.extend(expansion.gather, expansion.tails, now), None)
        return result

    def _new_job(self, message: SubmitJob, now: Now) -> Job | SubmitRefusedReply:
        """The job a submit asks for, or why it is refused."""
        try:
            return self._build_job(message, now)
        except (WorkNotFound, PayloadError, ValueError) as exc:
            return SubmitRefusedReply(type(exc).__name__, str(exc))

    def _build_job(self, message: SubmitJob, now: Now) -> Job:
        work = self.registry.get(message.work)
        work.decode_payload(message.payload)
        max_attempts = (
            message.max_attempts if message.max_attempts is not None else work.max_attempts
        )
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts!r}")
        timeout = message.timeout if message.timeout is not None else work.timeout
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout!r}")
        if message.when not in ("succeeded", "finished", "failed"):
            raise ValueError(
                f"when must be 'succeeded', 'finished' or 'failed', got {message.when!r}"
            )
        return Job(
            id=message.job_id or new_job_id(),
            work=work.name,
            queue=message.queue or work.queue,
            priority=message.priority if message.priority is not None else work.priority,
            payload=message.payload,
            status="queued",
            attempt=0,
            max_attempts=max_attempts,
            created=now.wall,
            updated=now.wall,
            seq=self.state.next_seq(),
            timeout=timeout,
            unique_key=message.unique_key,
            due=message.due,
            context=dict(message.context),
            depends_on=tuple(dict.fromkeys(message.depends_on)),
            when=message.when,
            workflow=message.workflow,
            path=message.path,
            policy=message.policy,
            limit_key=work.limit_key(message.payload),
            limit=work.limit,
        )

    async def _finished(self, job_id: str) -> bool:
        """Whether a submit's own ``job_id`` names a job that is no longer live.

        Only a submit that chose its id asks; the store is read unless the job
        finished lately. A live job of that id is the pure state's to find.
        """
        if not job_id or job_id in self.state.jobs:
            return False
        if job_id in self._recent:
            return True
        return await self.store.get(job_id) is not None

    async def _view(self, job_id: str) -> JobView | None:
        job = self.state.jobs.get(job_id)
        if job is not None:
            return self.state.view(job)
        recent = self._recent.get(job_id)
        if recent is not None:
            return recent
        job = await self.store.get(job_id)
        return None if job is None else job.view()

    async def _list(self, ask: ListJobs) -> JobListReply:
        """One page of jobs, newest first: the store's, and live ones not stored yet.

        A page holds at most ``_PAGE`` jobs; ``next`` leads to the following one.
        """
        limit = max(0, min(ask.limit, _PAGE))
        before, status, queue = ask.before, ask.status, ask.queue
        stored = await self.store.find(
            status=status,
            queue=queue,
            limit=limit,
            before=before,
            work=ask.work,
            since=ask.since,
            until=ask.until,
            workflow=ask.workflow,
        )
        live = self.state.jobs
        jobs = {job.id: live.get(job.id) or job for job in stored}
        # A full page from the store holds `limit` jobs from `floor` up: an older live job
        # could not make the page. Live jobs go by seq (SchedulerState.jobs), newest
        # last, so a backlog of queued jobs is not walked for every page.
        floor = stored[-1].seq if limit and len(stored) == limit else -1
        for job in reversed(live.values()):
            if job.seq < floor:
                break
            if (
                job.id not in jobs
                and (before is None or job.seq < before)
                and (status is None or job.status == status)
                and (queue is None or job.queue == queue)
                and (ask.work is None or job.work == ask.work)
                and (ask.since is None or job.created >= ask.since)
                and (ask.until is None or job.created < ask.until)
                and (ask.workflow is None or job.workflow == ask.workflow)
            ):
                jobs[job.id] = job
        page = sorted(jobs.values(), key=lambda job: job.seq, reverse=True)[:limit]
        more = len(page) == limit and limit > 0
        count = None
        if ask.count:
            count = await self.store.count(
                status=status,
                queue=queue,
                work=ask.work,
                since=ask.since,
                until=ask.until,
                workflow=ask.workflow,
            )
        return JobListReply(
            [self.state.view(job) for job in page],
            next=page[-1].seq if more else None,
            count=count,
        )

    async def _reply_after_commit(self, job_id: str, view: JobView | None = None) -> None:
        """Answer the current ask with the job's view once the pending batch is durable."""
        handle = self.defer_reply()
        if view is None:
            view = await self._view(job_id)
        self._pending.append(([ReplyEffect(JobReply(view))], handle))
        self._wake.set()

    # --- effects --------------------------------------------------------------------

    def _apply(self, effects: list[Effect], handle: Reply | None) -> None:
        if not effects:
            return
        self._pending.append((effects, handle))
        self._wake.set()
        if self.subscribers:
            self._unpublished += events_of(effects)
        if self.middleware.observes:
            self._hooks += _hooks_of(self.middleware, effects)

    # --- events -----------------------------------------------------------------------

    def _subscription(self, message: Subscribe | Unsubscribe | Terminated) -> Message | None:
        """Add or remove a subscriber; one whose actor stops (or link closes) goes."""
        match message:
            case Subscribe(subscription=name, filter=filter, buffer=buffer):
                ref = self.sender
                if ref is None:
                    raise ValueError(f"Subscribe {name!r} came without a sender to tell events to")
                sub = self.subscribers.add(name, ref, filter, buffer)
                self.system.watch(ref, self.ref)
                self.start_soon(self.subscribers.deliver, sub)
                log.info("subscribed", subscription=name, subscribers=len(self.subscribers))
                return SubscribedReply(name, self.subscribers.seq)
            case Unsubscribe(subscription=name):
                self.subscribers.remove(name)
            case Terminated(name=name):
                self.subscribers.remove_ref(name)
            case _:
                assert_never(message)
        if not self.subscribers:
            self._told_started.clear()
            self._unpublished = []
        return None

    def _output(self, output: JobOutput) -> None:
        """A running attempt's latest output: progress kept, events published now."""
        key = JobKey(output.job_id, output.attempt)
        if output.progressed:
            self.state.progress(key, output.fraction, output.message)
        if not self.subscribers:
            return
        started = output.started is not None and key not in self._told_started
        if started:
            self._told_started.add(key)
        job = self.state.jobs.get(output.job_id)
        self.subscribers.publish(output_events(output, job, started))

    async def _flush_forever(self) -> None:
        batch: list[_Pending] = []
        try:
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()
                while self._pending:
                    batch, self._pending = self._pending, []
                    events, self._unpublished = self._unpublished, []
                    hooks, self._hooks = self._hooks, []
                    await self._commit([effect for effects, _ in batch for effect in effects])
                    if events:
                        self.subscribers.publish(events)
                    for hook, argument in hooks:
                        hook(argument)
                    await self._carry_out(batch)
                    batch = []
        except LeadershipLost as exc:
            self._depose(str(exc))
        except Exception as exc:  # noqa: BLE001 - whatever broke the commits, step down
            reason = f"the job store could not commit: {type(exc).__name__}: {exc}"
            await self._step_down(reason, batch, exc)

    def _depose(self, reason: str) -> None:
        """Another Scheduler leads the store: stop writing and sending for good."""
        if not self.deposed.is_set():
            log.error("scheduler_deposed", store=self.store.path, reason=reason)
            self.deposed_reason = reason
            self.deposed.set()

    async def _commit(self, effects: list[Effect]) -> None:
        """Commit until it succeeds: nothing goes out that is not stored.

        A store error is retried with backoff for as long as the leader lease (a full
        disk may free up); past that it, like any other error, is raised to step down.
        """
        delay = 0.05
        give_up = time.monotonic() + self.leader_lease
        while True:
            started = time.perf_counter()
            try:
                await self.store.apply(effects)
            except StoreError as exc:
                if isinstance(exc, LeadershipLost) or time.monotonic() >= give_up:
                    raise
                log.error("store_commit_failed", error=str(exc), retry_in=delay)
                await anyio.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                self._commit_last = time.perf_counter() - started
                self._commits += 1
                self._commit_seconds += self._commit_last
                self.state.readings.commits.observe(self._commit_last)
                return

    async def _step_down(
        self, reason: str, batch: list[_Pending], error: Exception | None = None
    ) -> None:
        """The commits failed for good, or the lease could not be renewed in time: fail
        what waited, release the store, stop.

        Nothing of the failed batch was stored, so nothing of it was promised: its asks
        fail here, and the state a successor loads from the store never saw it.
        """
        log.error("scheduler_stepped_down", store=self.store.path, reason=reason, exc_info=error)
        self.deposed_reason = reason
        self.deposed.set()  # no more renewals, writes or sends; receive refuses
        failure = StoreError(f"the Scheduler stepped down: {reason}")
        pending, self._pending = [*batch, *self._pending], []
        for _effects, handle in pending:
            if handle is not None:
                handle.fail(failure)
        for handle in self._waiters.clear():
            handle.fail(failure)
        with anyio.CancelScope(shield=True):
            try:
                await self.store.release()
            except Exception as exc:  # noqa: BLE001 - the lease then lapses on its own
                log.warning("leader_lease_not_released", error=repr(exc))
        await self.system.stop(self.ref)

    async def _carry_out(self, batch: list[_Pending]) -> None:
        # Dispatches and acknowledgements to one pool leave as one message each kind.
        runs: dict[str, list[RunJob]] = {}
        acks: dict[str, list[JobKey]] = {}
        for effects, handle in batch:
            for effect in effects:
                match effect:
                    case (
                        Persist()
                        | Record()
                        | SaveSchedule()
                        | DropSchedule()
                        | SetFence()
                        | SetPaused()
                    ):
                        pass  # the commit did these; the commonest effects, tested first
                    case Send(pool=pool, message=RunJob() as run):
                        runs.setdefault(pool, []).append(run)
                    case Send(
                        pool=pool, message=ResultAcknowledged(job_id=job_id, attempt=attempt)
                    ):
                        acks.setdefault(pool, []).append(JobKey(job_id, attempt))
                    case Send(pool=pool, message=message):
                        await self._send(pool, message)
                    case ReplyEffect(message=message):
                        if handle is not None:
                            handle.resolve(message)
                    case Finished(view=view):
                        self._finished_counts[view.work, view.queue, view.status] += 1
                        self._recent[view.id] = view
                        if len(self._recent) > _RECENT:
                            self._recent.popitem(last=False)
                        if self.cron.finished(view.id):
                            self._cron_now = True  # a firing waited for this job to end
                        for waiter in self._waiters.pop(view.id):
                            waiter.resolve(JobReply(view))
                        log.debug(
                            "job_finished",
                            job_id=view.id,
                            work=view.work,
                            status=view.status,
                            attempt=view.attempt,
                            error=view.error or None,
                        )
                    case Forget(job_id=job_id):
                        self._recent.pop(job_id, None)
                    case _:
                        assert_never(effect)
        for pool, keys in acks.items():
            await self._send(pool, ResultsAcknowledged(keys))
        for pool, dispatched in runs.items():
            specs = [run.job for run in dispatched]
            await self._send(pool, RunJobs(specs, dispatched[0].lease))

    async def _send(self, pool: str, message: Message) -> None:
        ref = self.pools.get(pool)
        try:
            if ref is not None:
                await ref.tell(message)
        except ActorworkError as exc:
            ref = None
            log.warning("pool_unreachable", pool=pool, error=str(exc))
        if ref is None:
            self.state.pool_lost(pool)
            if self.subscribers:
                self.subscribers.publish([PoolLeft(pool=pool, reason="unreachable")])
            if isinstance(message, RunJobs):
                now = self.clock()
                for spec in message.jobs:
                    key = JobKey(spec.id, spec.attempt)
                    self._apply(self.state.dispatch_failed(key, now), None)

    # --- time -----------------------------------------------------------------------

    async def _tick_forever(self) -> None:
        renew_at = time.monotonic() + self.leader_lease / 3
        while not self.deposed.is_set():
            woke = time.monotonic() + self.tick
            await anyio.sleep(self.tick)
            self._loop_lag = max(0.0, time.monotonic() - woke)
            now = self.clock()
            self._apply(self.state.tick(now), None)
            due = self.cron.next_due()
            if self._cron_now or (due is not None and due <= now.wall):
                self._cron_now = False
                self._apply(self.cron.tick(now), None)
            self._expire_waiters(now)
            self._waiters.compact()
            if time.monotonic() >= renew_at:
                renew_at = time.monotonic() + self.leader_lease / 3
                await self._renew()
            if time.monotonic() >= self._lease_until and not self.deposed.is_set():
                # A standby may lead by now: stand down before two act as leader.
                reason = f"its lease was not renewed within leader_lease={self.leader_lease:g} s"
                await self._step_down(reason, [])
                return

    async def _prune_forever(self) -> None:
        while not self.deposed.is_set():
            await anyio.sleep(self.retention.interval)
            try:
                # A full batch means more is expired: the next one at once (each waits
                # on the store, so other work runs in between).
                while await self.prune() == self.retention.batch:
                    pass
                await self.store.reclaim()
            except LeadershipLost as exc:
                self._depose(str(exc))
            except ActorworkError as exc:
                log.warning("prune_failed", error=str(exc))

    async def prune(self) -> int:
        """Forget one batch of finished jobs past their retention; how many it forgot.

        The store chooses them (reading only); those live here — retried since — are
        left out, and the store deletes a job only if its row is still terminal.
        """
        rules = self.retention.rules(self.registry.get(name) for name in self.registry.names())
        now = self.clock()
        expired = await self.store.expired(rules, now.wall, self.retention.batch)
        forgotten = [job_id for job_id in expired if job_id not in self.state.jobs]
        self._pruned = set(forgotten)
        if forgotten:
            await self.store.apply([Forget(job_id) for job_id in forgotten])
            for job_id in forgotten:
                self._recent.pop(job_id, None)
            log.debug("pruned", jobs=len(forgotten))
        return len(forgotten)

    async def _renew(self) -> None:
        epoch = self.store.epoch
        if epoch is None:
            return
        # The store counts the lease from when it reads the renewal, after this: the
        # lease as this Scheduler counts it ends no later than the store's.
        asked = time.monotonic()
        try:
            renewed = await self.store.renew(epoch, asked + self.leader_lease)
        except ActorworkError as exc:
            log.warning("leader_lease_not_renewed", error=str(exc))
            return
        if not renewed:
            self._depose(f"epoch {epoch} was taken over")
        else:
            self._lease_until = asked + self.leader_lease

    def _expire_waiters(self, now: Now) -> None:
        """Answer the waiters whose wait is over with the job as it is now."""
        for job_id, handle in self._waiters.expired(now.mono):
            job = self.state.jobs.get(job_id)
            if job is not None:
                handle.resolve(JobReply(self.state.view(job)))
            else:  # finished (or deleted) since the wait began: answer with what is known
                self.start_soon(self._answer, handle, job_id)

    async def _answer(self, handle: Reply, job_id: str) -> None:
        handle.resolve(JobReply(await self._view(job_id)))


def _hooks_of(
    chain: MiddlewareChain, effects: list[Effect]
) -> list[tuple[Callable[[Any], None], Any]]:
    """The middleware calls a batch of effects makes: a dispatch hook per job sent, a
    commit hook per job finished."""
    hooks: list[tuple[Callable[[Any], None], Any]] = []
    for effect in effects:
        match effect:
            case Send(message=RunJob(job=spec)):
                hooks.append((chain.dispatched, spec))
            case Finished(view=view):
                hooks.append((chain.committed, view))
            case _:
                pass
    return hooks
