"""The pools as the Scheduler's pure state knows them: credit, routing, incarnations.

A mixin of :class:`~actorwork.scheduler.state.SchedulerState` and the record it keeps
of each pool (:class:`PoolSlot`). A pool's credit is what it asked for and was not
sent; a dispatch lost on a live link is given back once it is certain the pool never
had it (F8). A pool that comes back with a new incarnation (its process was restarted)
ends the attempts of its previous life as lost at once (F26). A heartbeat extends the
leases of the attempts a pool runs and stops those that are not current.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from actorwork.clock import Now
from actorwork.messages import JobKey, StopJob, WorkResult
from actorwork.scheduler.effects import Effect, Send
from actorwork.stores.base import Job, Persist

__all__ = ["PoolSlot", "Pools"]


@dataclass
class PoolSlot:
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
        """Whether it serves ``queue`` and can run ``work``."""
        return queue in self.queues and (self.works is None or work in self.works)


class Pools:
    """What the state does as pools come, ask, beat and go; see the module docstring."""

    # Fields of SchedulerState, where each is described.
    lease: float
    jobs: dict[str, Job]
    pools: dict[str, PoolSlot]
    _unconfirmed: dict[JobKey, str]
    # Methods of SchedulerState and its other parts.
    _dispatch: Callable[[Now], list[Effect]]
    _settle: Callable[..., list[Effect]]
    _give: Callable[[Job], None]
    _enqueue: Callable[[Job], None]

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
        self.pools[pool] = PoolSlot(
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
        """``pool`` asks for ``slots`` more jobs: its credit grows, and ready jobs go."""
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
