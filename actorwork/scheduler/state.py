"""The Scheduler's decisions, as a pure state machine: ``handle(event, now) -> effects``.

No I/O and no clock of its own: :class:`Now` carries a monotonic reading (for leases)
and a wall-clock reading (for due times and records), so every timing rule is tested
by passing times in. The actor in :mod:`actorwork.scheduler.actor` feeds it messages and
carries out the effects: it makes :class:`Persist`, :class:`Record` and
:class:`Forget` durable in one group commit, and only then performs the
:class:`Send`, :class:`Reply` and :class:`Finished` effects of that batch — so nothing
leaves the Scheduler that a crash could take back.

Invariants kept here (see RELIABILITY.md): a job's ``attempt`` only grows; a result
is committed only if it is for the job's current attempt while that attempt runs, or
is the final verdict of an attempt presumed lost when no newer one was issued yet
(I3, I4); a running attempt whose lease passes without a heartbeat is lost and
retried or buried (I6); every job in ``jobs`` is non-terminal, and leaves it the
moment it becomes terminal.

Routing: a job goes only to a connected pool that serves its queue and says it has its
work (F28: during a rolling deploy a job of a new work waits for a Pool that has it,
and its view says so).

The state is one dataclass made of parts by role, each a mixin in a module of its own:
the pools it knows (:mod:`~actorwork.scheduler.pools`), the dependency graph of jobs
and workflows (:mod:`~actorwork.scheduler.graph`), limits
(:mod:`~actorwork.scheduler.limits`) and what it tells of itself
(:mod:`~actorwork.scheduler.views`); its effects are in
:mod:`~actorwork.scheduler.effects`. Here are its fields, loading, submits, results,
the clock, and dispatch.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from actorwork.clock import Now
from actorwork.messages import (
    JobKey,
    JobSpec,
    ResultAcknowledged,
    RunJob,
    StopJob,
    SubmittedReply,
    WorkResult,
)
from actorwork.scheduler.effects import Effect, Finished, Reply, Send
from actorwork.scheduler.graph import Graph
from actorwork.scheduler.limits import Bucket, Limits
from actorwork.scheduler.pools import Pools, PoolSlot
from actorwork.scheduler.readings import Readings
from actorwork.scheduler.views import Views
from actorwork.stores.base import (
    DropSchedule,
    Forget,
    Job,
    Persist,
    Record,
    SaveSchedule,
    SetFence,
    SetPaused,
)

__all__ = [
    "Backoff",
    "DropSchedule",
    "Effect",
    "Finished",
    "Forget",
    "Job",
    "Now",
    "Persist",
    "Record",
    "Reply",
    "SaveSchedule",
    "SchedulerState",
    "Send",
    "SetFence",
    "SetPaused",
]


@dataclass(frozen=True)
class Backoff:
    """Delay before retry ``n`` (1-based): ``base * factor**(n-1)``, capped, with jitter.

    ``jitter`` is the fraction of the delay drawn at random (0.1: between 90% and
    100% of it), so jobs that failed together do not come back together.
    """

    base: float = 1.0
    factor: float = 2.0
    cap: float = 300.0
    jitter: float = 0.1

    def delay(self, retry: int, draw: Callable[[], float]) -> float:
        raw = min(self.cap, self.base * self.factor ** max(0, retry - 1))
        return raw * (1.0 - self.jitter * draw())


@dataclass
class SchedulerState(Pools, Graph, Limits, Views):
    """Every non-terminal job, the ready queues, leases and the pools' credit.

    Higher ``priority`` goes first within a queue; equal priorities go in submit
    order. Pools are served in turn, each up to the credit it asked for.
    """

    lease: float = 30.0
    backoff: Backoff = field(default_factory=Backoff)
    draw: Callable[[], float] = random.random
    #: Live jobs by id, in ascending ``seq``: a job enters only with a new, highest
    #: seq (submitted, revived) or when loaded in seq order, and leaves when it ends.
    jobs: dict[str, Job] = field(default_factory=dict)
    pools: dict[str, PoolSlot] = field(default_factory=dict)
    _unique: dict[str, str] = field(default_factory=dict)
    #: Ready jobs by queue, then by work: a pool is offered only the works it has.
    _ready: dict[str, dict[str, list[tuple[int, int, str]]]] = field(default_factory=dict)
    _due: list[tuple[float, int, str]] = field(default_factory=list)
    _leases: list[tuple[float, str, int]] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)
    #: Running attempts dispatched since their pool's last PoolReady that no heartbeat
    #: has listed yet, and the pool each went to.
    _unconfirmed: dict[JobKey, str] = field(default_factory=dict)
    #: The pool served last: the next dispatch starts with the one after it.
    _last: str | None = None
    #: Waiting jobs by the parent they wait for (entries of jobs gone are passed over).
    _children: dict[str, list[str]] = field(default_factory=dict)
    #: How the latest finished jobs ended: (status, return value), for new children.
    _ended: OrderedDict[str, tuple[str, bytes | None]] = field(default_factory=OrderedDict)
    #: Running jobs per limit key, and the key each running limited job counts against.
    _running: dict[str, int] = field(default_factory=dict)
    _holding: dict[str, str] = field(default_factory=dict)
    #: Queued jobs held by their limit, by key (a heap as in ``_ready``), and why each is.
    _held: dict[str, list[tuple[int, int, str]]] = field(default_factory=dict)
    _held_why: dict[str, str] = field(default_factory=dict)
    _buckets: dict[str, Bucket] = field(default_factory=dict)
    #: When a rate-limited key has a token again (monotonic), one entry per key.
    _refills: list[tuple[float, str]] = field(default_factory=list)
    _refill_at: dict[str, float] = field(default_factory=dict)
    #: Set when a held job went back to its queue: the next dispatch should run.
    _unheld: bool = False
    #: Queues that dispatch nothing until resumed; their jobs stay queued.
    paused: set[str] = field(default_factory=set)
    #: How long jobs waited queued and attempts ran, per work (for metrics only).
    readings: Readings = field(default_factory=Readings)
    #: The live nodes of each workflow, by its id: what a ``stop`` policy ends.
    _flows: dict[str, set[str]] = field(default_factory=dict)

    # --- loading ------------------------------------------------------------------

    def load(
        self, jobs: list[Job], now: Now, *, last_seq: int = -1, grace: float = 0.0
    ) -> list[Effect]:
        """Take the non-terminal jobs of a store after a restart.

        Jobs that were running keep running under a fresh lease, lengthened by
        ``grace``: their pools get that long to reconnect (they may be waiting out a
        backoff) and say so before the attempt counts as lost. ``last_seq``
        is the highest sequence number the store holds, finished jobs included, so
        new jobs sort after every old one. Running jobs count against their limits
        again. Waiting jobs wait again for their live parents; ``job.parents`` holds
        how the others ended (the shell reads it from the store), and a parent the
        store no longer knows cannot satisfy them. The effects are of waiting jobs
        that can go on, or are skipped, by what their parents did.
        """
        top = last_seq
        waiting: list[Job] = []
        for job in sorted(jobs, key=lambda j: j.seq):
            top = max(top, job.seq)
            self._track(job)
            if job.status == "running":
                self._lease(job, now, grace)
                self._take(job, now, tokens=False)
            elif job.status == "queued":
                self._enqueue(job)
            elif job.status == "waiting":
                waiting.append(job)
            else:
                self._schedule(job)
        self._seq = itertools.count(top + 1)
        effects: list[Effect] = []
        for job in waiting:
            if job.id in self.jobs and job.status == "waiting":
                effects += self._gate(job, now)
        return effects + self._dispatch(now)

    # --- submitting and client requests -------------------------------------------

    def next_seq(self) -> int:
        return next(self._seq)

    def submit(self, job: Job, now: Now, *, finished: bool = False) -> list[Effect]:
        """Add a validated job, unless a job of its id or unique key exists already.

        A job whose id is known — live here, or ``finished`` as the store says (the
        shell looks it up there first) — is answered with that id and
        ``created=False``, and nothing runs again: a client that retries a submit gets
        one execution. A live job holding the unique key wins the same way.
        """
        if finished or job.id in self.jobs:
            return [Reply(SubmittedReply(job.id, created=False))]
        if job.unique_key is not None:
            holder = self._unique.get(job.unique_key)
            if holder is not None:
                return [Reply(SubmittedReply(holder, created=False))]
        self._track(job)
        effects: list[Effect] = [Persist(job), Reply(SubmittedReply(job.id, created=True))]
        if job.depends_on:
            return effects + self._gate(job, now)
        return effects + self._go(job, now)

    def outcome(self, job_id: str) -> tuple[str, bytes | None] | None:
        """How a job that finished lately ended, (status, return value); None if the
        state does not remember it (live, unknown, or finished long ago)."""
        return self._ended.get(job_id)

    def cancel(self, job_id: str, reason: str, now: Now) -> list[Effect]:
        """Cancel a live job; a running attempt is told to stop and its result ignored."""
        job = self.jobs.get(job_id)
        if job is None:
            return []
        effects: list[Effect] = []
        if job.status == "running" and job.pool is not None:
            effects.append(Send(job.pool, StopJob(job.id, job.attempt, "cancelled")))
        job.error = reason
        return effects + self._finish(job, "cancelled", now)

    def revive(self, job: Job, now: Now) -> list[Effect]:
        """Run a finished job again (retry of a dead, failed, cancelled or skipped job)
        with its attempts renewed.

        A job with parents waits for them again: ``job.parents`` holds how those that
        ended did (the shell reads them), and a parent revived before it is live, so a
        workflow retried parents first runs its nodes in order. It is skipped at once
        if a parent still cannot satisfy it.
        """
        job.failures, job.error, job.due = 0, "", None
        job.seq = self.next_seq()
        self._track(job)
        job.updated = now.wall
        if job.depends_on:
            job.status = "waiting"
            return self._gate(job, now)
        job.status = "queued"
        self._enqueue(job)
        return [Persist(job), *self._dispatch(now)]

    def skip(self, job: Job, reason: str, now: Now) -> list[Effect]:
        """Add ``job`` as ended ``skipped`` with ``reason`` (a node of a workflow's branch
        not taken); nothing if a job of its id exists."""
        if job.id in self.jobs:
            return []
        self._track(job)
        job.error = reason
        return self._finish(job, "skipped", now)

    # --- pools ----------------------------------------------------------------------

    def progress(self, key: JobKey, fraction: float | None, message: str) -> None:
        job = self.jobs.get(key.job_id)
        if job is not None and job.attempt == key.attempt and job.status == "running":
            job.progress, job.progress_message = fraction, message

    def result(self, pool: str, result: WorkResult, now: Now) -> list[Effect]:
        """Commit the result of the running attempt; record any other as not committed.

        The pool is acknowledged either way, so it can forget the result.
        """
        ack = Send(pool, ResultAcknowledged(result.job_id, result.attempt))
        slot = self.pools.get(pool)
        if slot is not None:
            slot.owed.discard(result.key)  # it had that attempt: it asks for the slot itself
        job = self.jobs.get(result.job_id)
        if job is None:
            return [Record(result, committed=False, note="job not live"), ack]
        late = (
            job.lost_attempt == result.attempt == job.attempt
            and job.status in ("retrying", "queued")
            and result.outcome in ("succeeded", "failed", "cancelled")
        )
        if late:
            # Presumed lost when its lease ran out, yet no newer attempt was issued: the
            # attempt's own verdict stands (I4 fences attempts older than an issued one).
            job.failures -= 1
        elif result.attempt != job.attempt or job.status != "running":
            note = "superseded" if result.attempt < job.attempt else f"job {job.status}"
            return [Record(result, committed=False, note=note), ack]
        job.result = result
        job.progress, job.progress_message = result.progress, result.progress_message
        effects: list[Effect] = [Record(result, committed=True), ack]
        return effects + self._settle(job, result, now, heard_from=pool)

    # --- time -------------------------------------------------------------------------

    def tick(self, now: Now) -> list[Effect]:
        """Expire leases, release due jobs, and dispatch what became ready."""
        effects: list[Effect] = []
        while self._leases and self._leases[0][0] <= now.mono:
            _, job_id, attempt = heapq.heappop(self._leases)
            job = self.jobs.get(job_id)
            if job is None or job.attempt != attempt or job.status != "running":
                continue
            if job.lease_until is not None and job.lease_until > now.mono:
                heapq.heappush(self._leases, (job.lease_until, job_id, attempt))
                continue  # extended since this entry was pushed
            lost = WorkResult(
                job_id=job.id,
                attempt=job.attempt,
                outcome="lost",
                error=f"no heartbeat from pool {job.pool!r} for {self.lease:g} s (lease expired)",
                pool=job.pool or "",
            )
            job.lost_attempt = job.attempt
            effects += self._settle(job, lost, now)
        released = False
        while self._due and self._due[0][0] <= now.wall:
            _, _, job_id = heapq.heappop(self._due)
            job = self.jobs.get(job_id)
            if job is None or job.status not in ("scheduled", "retrying"):
                continue
            if job.due is not None and job.due > now.wall:
                continue  # rescheduled later since this entry was pushed
            job.status, job.due, job.updated = "queued", None, now.wall
            self._enqueue(job)
            effects.append(Persist(job))
            released = True
        refilled: list[str] = []
        while self._refills and self._refills[0][0] <= now.mono:
            _, key = heapq.heappop(self._refills)
            self._refill_at.pop(key, None)
            bucket = self._buckets.get(key)
            limit = self._held_limit(key)
            if bucket is not None and limit is not None:
                bucket.refill(limit, now.mono)
                released |= self._unhold(key, max(1, math.floor(bucket.tokens)))
                refilled.append(key)
        if released or self._unheld:
            effects += self._dispatch(now)
        for key in refilled:  # jobs still held wait for the next token
            self._arm(key, now)
        return effects

    def pause(self, queue: str, paused: bool, now: Now) -> list[Effect]:
        """Stop dispatching from ``queue``, or start again (dispatching what waited);
        either is stored, so a restarted Scheduler keeps the queue as it was left."""
        if paused:
            self.paused.add(queue)
            return [SetPaused(queue, True)]
        self.paused.discard(queue)
        return [SetPaused(queue, False), *self._dispatch(now)]

    # --- internals ----------------------------------------------------------------------

    def _track(self, job: Job) -> None:
        self.jobs[job.id] = job
        if job.workflow:
            self._flows.setdefault(job.workflow, set()).add(job.id)
        if job.unique_key is not None:  # a revived job does not take a held key over
            self._unique.setdefault(job.unique_key, job.id)

    def _enqueue(self, job: Job) -> None:
        by_work = self._ready.setdefault(job.queue, {})
        heapq.heappush(by_work.setdefault(job.work, []), (-job.priority, job.seq, job.id))

    def _schedule(self, job: Job) -> None:
        heapq.heappush(self._due, (job.due or 0.0, job.seq, job.id))

    def _lease(self, job: Job, now: Now, extra: float = 0.0) -> None:
        job.lease_until = now.mono + self.lease + extra
        heapq.heappush(self._leases, (job.lease_until, job.id, job.attempt))

    def _settle(
        self, job: Job, result: WorkResult, now: Now, *, heard_from: str | None = None
    ) -> list[Effect]:
        """Apply how the current attempt ended: finish, retry later, requeue or bury.

        ``heard_from`` is the pool that reported ``result``, if a pool did.
        """
        self._release(job, heard_from)
        if result.started:  # a result the worker timed, not one presumed for a lost attempt
            self.readings.ran(job.work, result.finished - result.started)
        match result.outcome:
            case "succeeded" | "failed" | "cancelled":
                job.error = result.error
                return self._finish(job, result.outcome, now)
            case "returned":
                job.status, job.updated = "queued", now.wall
                self._enqueue(job)
                return [Persist(job), *self._dispatch(now)]
            case _:
                job.failures += 1
                job.error = result.error
                if job.failures >= job.max_attempts:
                    return self._finish(job, "dead", now)
                job.status = "retrying"
                job.due = now.wall + self.backoff.delay(job.failures, self.draw)
                job.updated = now.wall
                self._schedule(job)
                return [Persist(job), *self._wake(now)]

    def _go(self, job: Job, now: Now, *, dispatch: bool = True) -> list[Effect]:
        """Queue a job that may run, or schedule it for its due time."""
        if job.due is not None and job.due > now.wall:
            job.status = "scheduled"
            self._schedule(job)
            return []
        job.status, job.due = "queued", None
        self._enqueue(job)
        if not dispatch:
            self._unheld = True  # the caller's _wake dispatches it
            return []
        return self._dispatch(now)

    def _wake(self, now: Now) -> list[Effect]:
        """Dispatch if a job became ready (left a limit's hold, or its parents ended)."""
        return self._dispatch(now) if self._unheld else []

    def _dispatch(self, now: Now) -> list[Effect]:
        """Hand ready jobs to pools with credit, taking the pools in turn."""
        self._unheld = False
        effects: list[Effect] = []
        names = list(self.pools)
        first = names.index(self._last) + 1 if self._last in self.pools else 0
        pools = [
            slot
            for slot in map(self.pools.__getitem__, names[first:] + names[:first])
            if slot.credit > 0 and slot.connected
        ]
        turn = 0
        while pools:
            turn %= len(pools)
            slot = pools[turn]
            job = self._pop_ready(slot, now)
            if job is None:
                pools.pop(turn)
                continue
            job.attempt += 1
            self.readings.waited(job.work, now.wall - job.updated)  # queued since then
            job.status, job.pool, job.updated = "running", slot.name, now.wall
            self._lease(job, now)
            self._take(job, now)
            self._unconfirmed[job.key] = slot.name
            effects += [Persist(job), Send(slot.name, RunJob(_spec(job), self.lease))]
            self._last = slot.name
            slot.credit -= 1
            if slot.credit == 0:
                pools.pop(turn)
            else:
                turn += 1
        return effects

    def _pop_ready(self, slot: PoolSlot, now: Now) -> Job | None:
        """The best ready job ``slot`` can run: highest priority, then oldest.

        A job whose limit is full is held aside on the way (:meth:`_hold`).
        """
        works = slot.works
        while True:
            best: list[tuple[int, int, str]] | None = None
            for queue in slot.queues:
                if queue in self.paused:
                    continue
                for work, heap in self._ready.get(queue, {}).items():
                    runnable = works is None or work in works
                    if heap and runnable and (best is None or heap[0] < best[0]):
                        best = heap
            if best is None:
                return None
            entry = heapq.heappop(best)
            job = self.jobs.get(entry[2])
            if job is not None and job.status == "queued" and job.seq == entry[1]:
                why = self._limited(job, now)
                if not why:
                    return job
                self._hold(job, entry, why, now)
            # Else a stale entry: the job was cancelled, revived or dispatched since.


def _spec(job: Job) -> JobSpec:
    return JobSpec(
        id=job.id,
        work=job.work,
        payload=job.payload,
        attempt=job.attempt,
        queue=job.queue,
        timeout=job.timeout,
        context=job.context,
        parents={parent: job.parents.get(parent, ("", None))[1] for parent in job.depends_on}
        if job.depends_on
        else {},
    )
