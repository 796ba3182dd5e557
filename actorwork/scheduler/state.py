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
and its view says so). A pool that comes back with a new incarnation (its process was
restarted) ends the attempts of its previous life as lost at once (F26). A pool's
credit is what it asked for and was not sent; a dispatch lost on a live link is given
back once it is certain the pool never had it (F8, see :class:`_PoolSlot`).

Dependencies: a job submitted with ``depends_on`` is ``waiting`` until each parent
ended; it then goes on if they ended as its ``when`` asks, or ends ``skipped`` (naming
the parent and how it ended) as soon as one parent can no longer satisfy it — and so,
transitively, do the jobs waiting on it. Parents exist before their children, so the
graph has no cycle. A child carries its parents' return values to its worker.

Limits (:class:`actorwork.work.Limit`): a job whose limit is full when its turn comes
is held aside, still ``queued``, its view saying why; it goes back to its queue when a
job of that limit stops running (whatever ended it: a result, a lease that ran out,
a cancel) or when the limit's token bucket refills. Invariant: for every limit key,
the running jobs that count against it are at most its ``concurrency``, and the starts
in any ``t`` seconds at most ``tokens + rate * t``.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec

from actorwork.clock import Now
from actorwork.messages import (
    TERMINAL,
    JobKey,
    JobSpec,
    JobStatus,
    JobView,
    Message,
    PoolView,
    QueueView,
    ResultAcknowledged,
    RunJob,
    RunningAttempt,
    StopJob,
    SubmittedReply,
    WorkResult,
)
from actorwork.scheduler.readings import Readings
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
from actorwork.work import Limit

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


# --- effects --------------------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Tell ``message`` to pool ``pool``, after the batch is committed."""

    pool: str
    message: Message


@dataclass(frozen=True)
class Reply:
    """Answer the message being handled, after the batch is committed."""

    message: Message


@dataclass(frozen=True)
class Finished:
    """The job reached a terminal state: wake whoever awaits it."""

    view: JobView


Effect = (
    Persist
    | Record
    | Forget
    | Send
    | Reply
    | Finished
    | SaveSchedule
    | DropSchedule
    | SetFence
    | SetPaused
)


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
class _PoolSlot:
    """What the Scheduler knows of one pool.

    ``owed`` holds the attempts sent to this pool that ended (lease run out, cancelled)
    while no heartbeat had ever listed them and no result came from this pool: the
    RunJob may have been lost on the way, and then the pool still waits for the slot it
    asked for. A heartbeat that does not list such an attempt proves the pool does not
    run it (its messages travel in order: a result, and the RequestWork that went
    before it, arrive before the next heartbeat), so the slot is credited again. A
    result from this pool for the attempt drops it; PoolReady, which states the credit
    afresh, clears them all, and no attempt sent before it is owed later.
    """

    name: str
    queues: tuple[str, ...]
    credit: int = 0
    connected: bool = True
    #: The works it can run; None when it did not say (a Pool older than the field): any.
    works: frozenset[str] | None = None
    #: Random per start of the pool's process; "" when it did not say.
    incarnation: str = ""
    owed: set[JobKey] = field(default_factory=set)
    #: The slots it said it has in all (0: it did not say).
    capacity: int = 0
    #: When the Scheduler last heard from it (monotonic seconds).
    heard: float = 0.0
    #: The results it holds unacknowledged, as its latest heartbeat said.
    backlog: int = 0

    def runs(self, queue: str, work: str) -> bool:
        return queue in self.queues and (self.works is None or work in self.works)


@dataclass
class _Bucket:
    """A rate limit's tokens, as of ``stamp`` (monotonic seconds)."""

    tokens: float
    stamp: float

    def refill(self, limit: Limit, mono: float) -> None:
        rate = limit.rate or 0.0
        self.tokens = min(float(limit.tokens), self.tokens + max(0.0, mono - self.stamp) * rate)
        self.stamp = max(self.stamp, mono)


#: How many finished jobs' outcomes the state remembers for children submitted later
#: (older ones the shell reads from the store).
_ENDED = 10_000


def blocks(when: str, status: str) -> bool:
    """Whether a parent that ended ``status`` keeps a child of ``when`` from running."""
    if when == "succeeded":
        return status != "succeeded"
    if when == "failed":
        return status not in ("failed", "dead")
    return False


def _skipped_because(parent: str, status: str, when: str) -> str:
    return f"parent {parent!r} ended {status}; this job runs when its parents {when}"


def skip_reason(job: Job) -> str:
    """Why ``job`` can no longer run as its ``when`` asks, given its parents so far; or ""."""
    for parent in job.depends_on:
        known = job.parents.get(parent)
        if known is not None and blocks(job.when, known[0]):
            return _skipped_because(parent, known[0], job.when)
    return ""


@dataclass
class SchedulerState:
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
    pools: dict[str, _PoolSlot] = field(default_factory=dict)
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
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
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

    def extend(self, job_id: str, parents: list[str], now: Now) -> list[Effect]:
        """Make the waiting job ``job_id`` wait for ``parents`` too (the nodes a
        workflow's expansion added before its gathering node). Nothing if it is not
        waiting any more."""
        job = self.jobs.get(job_id)
        if job is None or job.status != "waiting":
            return []
        added = [p for p in dict.fromkeys(parents) if p not in job.depends_on]
        job.depends_on += tuple(added)
        for parent in added:
            if parent in self.jobs:
                self._children.setdefault(parent, []).append(job.id)
            else:
                job.parents[parent] = self._ended.get(parent, ("unknown", None))
        job.updated = now.wall
        return [Persist(job)]

    # --- pools ----------------------------------------------------------------------

    def pool_ready(
        self,
        pool: str,
        queues: list[str],
        free: int,
        running: list[JobKey],
        now: Now,
        *,
        works: list[str] | None = None,
        incarnation: str = "",
        capacity: int = 0,
    ) -> list[Effect]:
        """A pool (re)connected: its credit is what it has free; stray attempts stop.

        ``works`` are the works it can run (None: any). When it comes back with an
        ``incarnation`` other than the one it had, its process was restarted: the
        attempts of its previous life are lost now, not when their leases run out.
        """
        old = self.pools.get(pool)
        effects: list[Effect] = []
        if old is not None and incarnation:
            if old.incarnation and old.incarnation != incarnation:
                effects += self._restarted(pool, now)
        elif old is not None:
            incarnation = old.incarnation
        # Its free count covers any dispatch it never got: none is owed to it later.
        self._unconfirmed = {k: p for k, p in self._unconfirmed.items() if p != pool}
        self.pools[pool] = _PoolSlot(
            pool,
            tuple(queues),
            credit=max(0, free),
            works=None if works is None else frozenset(works),
            incarnation=incarnation,
            capacity=capacity,
            heard=now.mono,
        )
        return effects + self._confirm(pool, running, now) + self._dispatch(now)

    def request_work(self, pool: str, slots: int, now: Now) -> list[Effect]:
        slot = self.pools.get(pool)
        if slot is None:
            return []  # a pool must say PoolReady first; it will after reconnecting
        slot.credit += max(0, slots)
        return self._dispatch(now)

    def heartbeat(
        self,
        pool: str,
        running: list[JobKey],
        now: Now,
        *,
        works: list[str] | None = None,
        unresponsive: list[JobKey] | tuple[JobKey, ...] = (),
        backlog: int = 0,
    ) -> list[Effect]:
        """Extend the leases of what ``pool`` runs; give back the slots of lost dispatches.

        ``unresponsive`` attempts get no lease, but the pool has them: their slots are
        not given back. ``works``, when given, are the works the pool can run now.
        ``backlog`` is how many results the pool holds unacknowledged (a reading).
        """
        effects = self._confirm(pool, running, now)
        for key in unresponsive:
            if self._unconfirmed.get(key) == pool:
                del self._unconfirmed[key]
        slot = self.pools.get(pool)
        if slot is not None:
            slot.heard, slot.backlog = now.mono, backlog
        if slot is None or not slot.connected:
            return effects  # PoolReady states its credit afresh
        if works is not None:
            slot.works = frozenset(works)
        if slot.owed:
            listed = {*running, *unresponsive}
            never_had = [key for key in slot.owed if key not in listed]
            slot.owed.difference_update(never_had)
            slot.credit += len(never_had)
        return effects + self._dispatch(now)

    def pool_lost(self, pool: str) -> None:
        """The pool's connection broke: send it nothing until it is ready again.

        Its running jobs keep their leases: a pool that reconnects in time goes on.
        """
        slot = self.pools.get(pool)
        if slot is not None:
            slot.credit, slot.connected = 0, False

    def dispatch_failed(self, key: JobKey, now: Now) -> list[Effect]:
        """A RunJob could not be delivered: the attempt never started; queue the job again."""
        job = self.jobs.get(key.job_id)
        if job is None or job.attempt != key.attempt or job.status != "running":
            return []
        self._unconfirmed.pop(job.key, None)  # the pool is lost: PoolReady restates its credit
        self._give(job)
        job.pool = job.lease_until = None
        job.status, job.updated = "queued", now.wall
        self._enqueue(job)
        return [Persist(job), *self._dispatch(now)]

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

    def view(self, job: Job) -> JobView:
        """The job's view, saying why a job waits: for parents, a limit or a pool."""
        view = job.view()
        waiting = self.waiting_for(job)
        return msgspec.structs.replace(view, waiting=waiting) if waiting else view

    def waiting_for(self, job: Job) -> str:
        """Why a job is not dispatched: the parents a waiting job waits for, the limit
        that holds a queued one, or that no connected pool can run it; else ""."""
        if job.status == "waiting":
            pending = [p for p in job.depends_on if p not in job.parents]
            names = ", ".join(repr(p) for p in pending[:3])
            more = f" and {len(pending) - 3} more" if len(pending) > 3 else ""
            return f"waits for {names}{more} to have {job.when}"
        if job.status != "queued":
            return ""
        held = self._held_why.get(job.id)
        if held is not None:
            return held
        if job.queue in self.paused:
            return f"queue {job.queue!r} is paused"
        if any(s.connected and s.runs(job.queue, job.work) for s in self.pools.values()):
            return ""
        return f"waits for a pool with work {job.work!r} on queue {job.queue!r}"

    def running_under(self, key: str) -> int:
        """How many running jobs count against the limit ``key``."""
        return self._running.get(key, 0)

    def pause(self, queue: str, paused: bool, now: Now) -> list[Effect]:
        """Stop dispatching from ``queue``, or start again (dispatching what waited);
        either is stored, so a restarted Scheduler keeps the queue as it was left."""
        if paused:
            self.paused.add(queue)
            return [SetPaused(queue, True)]
        self.paused.discard(queue)
        return [SetPaused(queue, False), *self._dispatch(now)]

    def queues(self, now: Now) -> list[QueueView]:
        """Every queue with live jobs, a pool serving it, or paused, by name."""
        names = set(self.paused)
        for slot in self.pools.values():
            names.update(slot.queues)
        counts: dict[str, dict[str, int]] = {}
        oldest: dict[str, float] = {}
        for job in self.jobs.values():
            names.add(job.queue)
            by_status = counts.setdefault(job.queue, {})
            by_status[job.status] = by_status.get(job.status, 0) + 1
            if job.status == "queued":
                oldest[job.queue] = min(oldest.get(job.queue, job.updated), job.updated)
        views = []
        for name in sorted(names):
            by_status = counts.get(name, {})
            views.append(
                QueueView(
                    name=name,
                    queued=by_status.get("queued", 0),
                    running=by_status.get("running", 0),
                    scheduled=by_status.get("scheduled", 0),
                    retrying=by_status.get("retrying", 0),
                    oldest_age=max(0.0, now.wall - oldest[name]) if name in oldest else 0.0,
                    paused=name in self.paused,
                )
            )
        return views

    def pool_views(self, now: Now) -> list[PoolView]:
        """Every pool that introduced itself, with its running attempts, by name."""
        busy: dict[str, list[RunningAttempt]] = {}
        for job in self.jobs.values():
            if job.status == "running" and job.pool is not None:
                busy.setdefault(job.pool, []).append(
                    RunningAttempt(
                        job_id=job.id,
                        work=job.work,
                        queue=job.queue,
                        attempt=job.attempt,
                        since=job.updated,
                    )
                )
        return [
            PoolView(
                name=slot.name,
                queues=list(slot.queues),
                works=None if slot.works is None else sorted(slot.works),
                connected=slot.connected,
                capacity=slot.capacity,
                free=slot.credit,
                busy=sorted(busy.get(slot.name, []), key=lambda a: a.since),
                heartbeat_age=max(0.0, now.mono - slot.heard),
                backlog=slot.backlog,
            )
            for slot in sorted(self.pools.values(), key=lambda s: s.name)
        ]

    def next_deadline(self) -> tuple[float | None, float | None]:
        """The earliest lease end (monotonic) and the earliest due time (wall), if any."""
        lease = self._leases[0][0] if self._leases else None
        due = self._due[0][0] if self._due else None
        return lease, due

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

    def _confirm(self, pool: str, running: list[JobKey], now: Now) -> list[Effect]:
        """Extend the leases of the attempts ``pool`` runs; stop those that are not current."""
        effects: list[Effect] = []
        for key in running:
            job = self.jobs.get(key.job_id)
            if job is not None and job.attempt == key.attempt and job.status == "running":
                job.pool = pool
                job.lease_until = now.mono + self.lease  # the heap entry is checked lazily
                self._unconfirmed.pop(key, None)
            else:
                effects.append(Send(pool, StopJob(key.job_id, key.attempt, "not current")))
        return effects

    def _restarted(self, pool: str, now: Now) -> list[Effect]:
        """``pool`` came back as a new process: what it ran before is lost (F26)."""
        effects: list[Effect] = []
        for job in [j for j in self.jobs.values() if j.status == "running" and j.pool == pool]:
            lost = WorkResult(
                job_id=job.id,
                attempt=job.attempt,
                outcome="lost",
                error=f"pool {pool!r} restarted: the attempt ended with its previous process",
                pool=pool,
            )
            job.lost_attempt = job.attempt
            effects += self._settle(job, lost, now)
        return effects

    def _release(self, job: Job, heard_from: str | None) -> None:
        """The current attempt ends: free its lease; owe its pool the slot if the pool
        may never have had it (no heartbeat listed it, no result came from it)."""
        key = job.key
        pool = self._unconfirmed.pop(key, None)
        slot = None if pool is None or pool == heard_from else self.pools.get(pool)
        if slot is not None:
            slot.owed.add(key)
        self._give(job)
        job.pool = job.lease_until = None

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

    def _finish(self, job: Job, status: JobStatus, now: Now) -> list[Effect]:
        """End ``job``; the jobs waiting on it learn how, and go on or are skipped.

        Skips spread through the graph by a work list, not recursion: a chain of
        thousands of jobs ends in one call.
        """
        effects = self._end(job, status, now)
        ended = [job]
        while ended:
            parent = ended.pop()
            outcome = (parent.status, self._value(parent))
            for child_id in self._children.pop(parent.id, ()):
                child = self.jobs.get(child_id)
                if child is None or child.status != "waiting" or parent.id in child.parents:
                    continue
                # Only this parent's outcome is new: a fan-in of n parents costs O(n).
                child.parents[parent.id] = outcome
                if blocks(child.when, parent.status):
                    child.error = _skipped_because(parent.id, parent.status, child.when)
                    ended.append(child)
                    effects += self._end(child, "skipped", now)
                elif len(child.parents) >= len(child.depends_on):
                    child.updated = now.wall
                    effects += [Persist(child), *self._go(child, now, dispatch=False)]
        if status in ("failed", "dead") and job.policy == "stop":
            effects += self._stop_workflow(job, now)
        return effects + self._wake(now)

    def _stop_workflow(self, failed: Job, now: Now) -> list[Effect]:
        """A node of a ``stop`` workflow failed: its running nodes are cancelled, the
        others that have not ended are skipped, naming the node that failed."""
        effects: list[Effect] = []
        reason = f"workflow {failed.workflow!r} stopped: node {failed.path!r} ended {failed.status}"
        for job_id in sorted(self._flows.get(failed.workflow, ())):
            job = self.jobs.get(job_id)
            if job is None:
                continue  # ended with a node ended before it
            job.error = reason
            if job.status == "running":
                effects += self.cancel(job_id, reason, now)
            else:
                effects += self._finish(job, "skipped", now)
        return effects

    def _end(self, job: Job, status: JobStatus, now: Now) -> list[Effect]:
        assert status in TERMINAL
        job.status, job.updated, job.due = status, now.wall, None
        self._release(job, None)
        del self.jobs[job.id]
        if job.workflow:
            live = self._flows.get(job.workflow)
            if live is not None:
                live.discard(job.id)
                if not live:
                    del self._flows[job.workflow]
        self._held_why.pop(job.id, None)
        self._ended[job.id] = (status, self._value(job))
        if len(self._ended) > _ENDED:
            self._ended.popitem(last=False)
        if job.unique_key is not None and self._unique.get(job.unique_key) == job.id:
            del self._unique[job.unique_key]
        return [Persist(job), Finished(job.view())]

    @staticmethod
    def _value(job: Job) -> bytes | None:
        return None if job.result is None else job.result.value

    def _gate(self, job: Job, now: Now) -> list[Effect]:
        """Decide a new or reloaded job with parents: skip it, let it wait, or go on.

        A parent neither live nor known to have ended is unknown (forgotten since):
        it cannot satisfy the job.
        """
        for parent in job.depends_on:
            if parent in job.parents or parent in self.jobs:
                continue
            known = self._ended.get(parent)
            job.parents[parent] = known if known is not None else ("unknown", None)
        reason = skip_reason(job)
        if reason:
            job.error = reason
            return self._finish(job, "skipped", now)
        pending = [p for p in job.depends_on if p not in job.parents]
        if pending:
            if job.status != "waiting":
                job.status, job.updated = "waiting", now.wall
            for parent in pending:
                children = self._children.setdefault(parent, [])
                if not children or children[-1] != job.id:
                    children.append(job.id)
            return [Persist(job)]
        job.updated = now.wall
        return [Persist(job), *self._go(job, now)]

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

    def _pop_ready(self, slot: _PoolSlot, now: Now) -> Job | None:
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

    # --- limits -------------------------------------------------------------------------

    def _limited(self, job: Job, now: Now) -> str:
        """Why ``job``'s limit lets it not start now; "" when it may (or has no limit)."""
        limit, key = job.limit, job.limit_key
        if limit is None or key is None:
            return ""
        running = self._running.get(key, 0)
        if limit.concurrency is not None and running >= limit.concurrency:
            return f"held by limit {key!r}: {running} of {limit.concurrency} running"
        if limit.rate is not None and self._bucket(key, limit, now).tokens < 1.0:
            return f"held by limit {key!r}: at most {limit.rate:g} starts per second"
        return ""

    def _bucket(self, key: str, limit: Limit, now: Now) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(limit.tokens), now.mono)
        else:
            bucket.refill(limit, now.mono)
        return bucket

    def _take(self, job: Job, now: Now, *, tokens: bool = True) -> None:
        """``job`` starts running: it counts against its limit until :meth:`_give`."""
        limit, key = job.limit, job.limit_key
        if limit is None or key is None or job.id in self._holding:
            return
        self._holding[job.id] = key
        self._running[key] = self._running.get(key, 0) + 1
        if tokens and limit.rate is not None:
            self._bucket(key, limit, now).tokens -= 1.0
            self._arm(key, now)

    def _give(self, job: Job) -> None:
        """``job`` stopped running: its limit has room for one held job again."""
        key = self._holding.pop(job.id, None)
        if key is None:
            return
        left = self._running[key] - 1
        if left:
            self._running[key] = left
        else:
            del self._running[key]
        self._unheld |= self._unhold(key, 1)

    def _hold(self, job: Job, entry: tuple[int, int, str], why: str, now: Now) -> None:
        """Set a queued job aside until its limit has room; a rate wakes it by the clock."""
        key = job.limit_key
        assert key is not None
        heapq.heappush(self._held.setdefault(key, []), entry)
        self._held_why[job.id] = why
        self._arm(key, now)

    def _arm(self, key: str, now: Now) -> None:
        """Wake the jobs held under a rate-limited ``key`` when its next token is in."""
        limit = self._held_limit(key)
        if limit is None or limit.rate is None or key in self._refill_at:
            return
        bucket = self._bucket(key, limit, now)
        if bucket.tokens >= 1.0:
            return  # held for its concurrency: a job that stops running wakes it
        at = now.mono + (1.0 - bucket.tokens) / limit.rate
        self._refill_at[key] = at
        heapq.heappush(self._refills, (at, key))

    def _held_limit(self, key: str) -> Limit | None:
        """The limit of the jobs held under ``key``, if any job is held there."""
        for _, _, job_id in self._held.get(key, ()):
            job = self.jobs.get(job_id)
            if job is not None and job.limit is not None:
                return job.limit
        return None

    def _unhold(self, key: str, count: int) -> bool:
        """Put back up to ``count`` of the best jobs held under ``key``; whether any went."""
        heap = self._held.get(key)
        moved = 0
        while heap and moved < count:
            _, seq, job_id = heapq.heappop(heap)
            job = self.jobs.get(job_id)
            if self._held_why.pop(job_id, None) is None or job is None or job.seq != seq:
                continue
            if job.status == "queued":
                self._enqueue(job)
                moved += 1
        if heap is not None and not heap:
            del self._held[key]
        return moved > 0


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
