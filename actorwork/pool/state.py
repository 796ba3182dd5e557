"""The Pool's bookkeeping, without I/O: which worker runs which attempt, which results
wait for the Scheduler's acknowledgement in which outbox entry, and what is owed.

The actor in :mod:`actorwork.pool.actor` owns the workers, the outbox and the connection;
it asks this state what to do and tells it what happened. Times are passed in (wall
clock, for the records in results), so every rule here is tested without sleeping.

Invariants: an attempt runs on at most one worker (a duplicate dispatch is ignored);
a worker runs at most one attempt; a worker is idle, running an attempt or
overrunning one (its thread still runs work whose attempt ended), never two of these,
so ``free`` never counts a thread that is still busy; once an attempt has been
reported (finished, lost or handed back) a later report for it is dropped, so the
Scheduler hears of each attempt once; a result leaves ``unacked`` only when
acknowledged, and an outbox entry is released when the last result in it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from actorwork.messages import JobKey, JobSpec, Outcome, WorkResult

__all__ = ["Attempt", "PoolState"]


@dataclass(frozen=True)
class Attempt:
    """One attempt running on worker ``worker`` since ``since`` (wall clock)."""

    spec: JobSpec
    worker: str
    since: float

    @property
    def key(self) -> JobKey:
        return JobKey(self.spec.id, self.spec.attempt)


@dataclass
class PoolState:
    """Workers and attempts of one Pool; see the module docstring."""

    name: str
    #: Idle workers, in the order they came free.
    idle: list[str] = field(default_factory=list)
    running: dict[JobKey, Attempt] = field(default_factory=dict)
    #: Workers whose attempt ended (timed out, stopped) while its sync work still runs
    #: in their thread, and that attempt: busy, not idle, until the thread returns.
    overrunning: dict[str, JobKey] = field(default_factory=dict)
    #: Results persisted and not yet acknowledged, and the outbox entry holding each.
    unacked: dict[JobKey, tuple[WorkResult, str]] = field(default_factory=dict)
    #: Outbox entries and the results in them still waiting for an acknowledgement.
    entries: dict[str, set[JobKey]] = field(default_factory=dict)
    #: When each unacknowledged result was last reported (monotonic seconds).
    reported: dict[JobKey, float] = field(default_factory=dict)
    #: Set once a drain began: no more work is taken.
    draining: bool = False

    # --- workers and attempts -----------------------------------------------------------

    def add_worker(self, worker: str) -> None:
        self.idle.append(worker)

    def remove_worker(self, worker: str) -> None:
        if worker in self.idle:
            self.idle.remove(worker)
        self.overrunning.pop(worker, None)

    @property
    def free(self) -> int:
        return len(self.idle)

    def assign(self, spec: JobSpec, now: float) -> Attempt | WorkResult | None:
        """Where ``spec`` runs: an Attempt, a ``returned`` result to report, or None
        for a duplicate dispatch of an attempt already running (one execution each)."""
        key = JobKey(spec.id, spec.attempt)
        if key in self.running:
            return None
        if not self.idle or self.draining:
            why = "is stopping" if self.draining else "had no free worker"
            return WorkResult(
                job_id=spec.id,
                attempt=spec.attempt,
                outcome="returned",
                error=f"pool {self.name!r} {why}",
                pool=self.name,
            )
        attempt = Attempt(spec, self.idle.pop(0), now)
        self.running[key] = attempt
        return attempt

    def finished(self, result: WorkResult) -> Attempt | None:
        """The attempt a worker's result ends, freeing its worker; None if it already
        ended (reported lost or handed back), in which case the result is dropped."""
        attempt = self.running.pop(JobKey(result.job_id, result.attempt), None)
        if attempt is not None:
            self.idle.append(attempt.worker)
        return attempt

    def overran(self, result: WorkResult) -> Attempt | None:
        """As :meth:`finished`, but the attempt's work still runs in its worker's thread:
        the worker stays busy, not idle, until :meth:`freed`. None if the attempt had
        already ended (its result is dropped); its worker is held busy all the same."""
        attempt = self.running.pop(result.key, None)
        worker = attempt.worker if attempt is not None else result.worker
        if attempt is not None or worker in self.idle:
            if worker in self.idle:
                self.idle.remove(worker)
            self.overrunning[worker] = result.key
        return attempt

    def freed(self, worker: str, key: JobKey) -> bool:
        """The thread of ``worker``'s overrunning attempt ``key`` returned: it is idle
        again. False if it was not overrunning that attempt (nothing changes)."""
        if self.overrunning.get(worker) != key:
            return False
        del self.overrunning[worker]
        self.idle.append(worker)
        return True

    def attempt_of(self, worker: str) -> Attempt | None:
        return next((a for a in self.running.values() if a.worker == worker), None)

    def lose(self, worker: str, error: str, now: float) -> WorkResult | None:
        """Worker ``worker`` is gone: its attempt, if any, ends ``lost``.

        The worker is not idle again; the shell adds its replacement.
        """
        attempt = self.attempt_of(worker)
        if attempt is None:
            return None
        del self.running[attempt.key]
        return self._ended(attempt, "lost", error, now)

    def hand_back(self, now: float) -> list[tuple[Attempt, WorkResult]]:
        """End every running attempt as ``returned`` (the pool is stopping)."""
        ended = [
            (attempt, self._ended(attempt, "returned", f"pool {self.name!r} stopped", now))
            for attempt in self.running.values()
        ]
        for attempt, _ in ended:
            self.idle.append(attempt.worker)
        self.running.clear()
        return ended

    def overdue(self, now: float, grace: float) -> list[Attempt]:
        """Attempts past their job's timeout by more than ``grace`` (or 10% of it)."""
        return [
            a
            for a in self.running.values()
            if a.spec.timeout is not None
            and now >= a.since + a.spec.timeout + max(grace, a.spec.timeout * 0.1)
        ]

    def _ended(self, attempt: Attempt, outcome: Outcome, error: str, now: float) -> WorkResult:
        return WorkResult(
            job_id=attempt.spec.id,
            attempt=attempt.spec.attempt,
            outcome=outcome,
            error=error,
            started=attempt.since,
            finished=now,
            pool=self.name,
            worker=attempt.worker,
        )

    # --- results waiting for acknowledgement ----------------------------------------------

    def hold(self, entry: str, results: list[WorkResult], now: float = 0.0) -> None:
        """``results`` are persisted in outbox entry ``entry``, and reported at ``now``:
        keep them until acked."""
        if results:
            self.entries[entry] = {r.key for r in results}
            for result in results:
                self.unacked[result.key] = (result, entry)
                self.reported[result.key] = now

    def acknowledge(self, key: JobKey) -> str | None:
        """The Scheduler has stored ``key``'s result; the entry to remove, once empty."""
        held = self.unacked.pop(key, None)
        if held is None:
            return None
        self.reported.pop(key, None)
        waiting = self.entries[held[1]]
        waiting.discard(key)
        if waiting:
            return None
        del self.entries[held[1]]
        return held[1]

    def to_deliver(self, now: float | None = None) -> list[WorkResult]:
        """Every result still waiting for an acknowledgement, oldest first; with ``now``,
        they count as reported then."""
        if now is not None:
            self.reported = dict.fromkeys(self.unacked, now)
        return [result for result, _ in self.unacked.values()]

    def unanswered(self, now: float, after: float) -> list[WorkResult]:
        """Results reported ``after`` seconds ago or more and still not acknowledged:
        the report or its acknowledgement went missing. They count as reported now."""
        late = [key for key, at in self.reported.items() if now - at >= after]
        for key in late:
            self.reported[key] = now
        return [self.unacked[key][0] for key in late]
