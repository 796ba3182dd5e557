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

The shell is split by role, one mixin a module: the commit loop in
:mod:`~actorwork.scheduler.commits`, answers about jobs in
:mod:`~actorwork.scheduler.queries`, operators' asks in
:mod:`~actorwork.scheduler.operations`, the tick, lease renewal and pruning in
:mod:`~actorwork.scheduler.upkeep`, and what clients change (submits, cancels, retries,
deletes, a workflow's expansion) in :mod:`~actorwork.scheduler.submits`. Here are the
Scheduler's fields, its start and stop, and what each message does.
"""

from __future__ import annotations

import math
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, assert_never

import anyio

from actorwork.clock import system_now
from actorwork.errors import (
    ActorworkError,
    LeadershipLost,
    PayloadError,
)
from actorwork.events import (
    Event,
    PoolJoined,
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
    JobKey,
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
    PoolHeartbeat,
    PoolReady,
    RemoveSchedule,
    ReportResult,
    ReportResults,
    RequestWork,
    RetryJob,
    RunSchedule,
    SubmitJob,
    SubmitJobs,
    SubmitRefusedReply,
    Terminated,
    WorkResult,
)
from actorwork.middleware import MiddlewareChain
from actorwork.middleware import load as load_middleware
from actorwork.runtime import ActorRef
from actorwork.scheduler.commits import CommitLoop, Pending, log
from actorwork.scheduler.cron import Cron
from actorwork.scheduler.leadership import holder_name, lead
from actorwork.scheduler.operations import Operations
from actorwork.scheduler.queries import Answers
from actorwork.scheduler.state import (
    Backoff,
    Job,
    Now,
    SchedulerState,
)
from actorwork.scheduler.state import Reply as ReplyEffect
from actorwork.scheduler.submits import Submits, new_job, new_job_id
from actorwork.scheduler.subscribers import (
    Subscribers,
    output_events,
    result_events,
)
from actorwork.scheduler.upkeep import Upkeep
from actorwork.scheduler.waiters import Waiters
from actorwork.schedules import Schedule
from actorwork.stores import JobStore, open_store
from actorwork.stores.base import Retention
from actorwork.work import WorkRegistry, default_registry

__all__ = ["Scheduler", "SchedulerInbound", "new_job_id"]

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


class Scheduler(Operations, Upkeep, Submits, Answers, CommitLoop):
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
        self._pending: list[Pending] = []
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
                job = new_job(self.registry, message, now, self.state.next_seq)
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
