"""The Pool's bookkeeping and timing rules, without I/O: which worker runs which
attempt, which results wait for the Scheduler's acknowledgement in which outbox entry,
what is owed, and when to act on silence or overrun.

The actor in :mod:`actorwork.pool.actor` owns the workers, the outbox and the connection;
it asks this state what to do and tells it what happened. Time is passed in as a
:class:`~actorwork.clock.Now` (``mono`` for durations and deadlines, ``wall`` for the
records in results) and the state keeps no clock of its own, so every rule here is
tested without sleeping:

- a result reported and not acknowledged for ``resend_after`` heartbeats is reported
  again (:meth:`PoolState.unanswered`);
- a link to the Scheduler that answered nothing for ``resend_after`` heartbeats is
  closed (:meth:`PoolState.silent`);
- an attempt past its job's timeout plus a grace has its worker stopped, once
  (:meth:`PoolState.overdue`, :meth:`PoolState.next_deadline`);
- a drain ends at its deadline, which a second drain can only bring closer
  (:meth:`PoolState.drain`, :meth:`PoolState.drain_left`).

Invariants: an attempt runs on at most one worker (a duplicate dispatch is ignored);
a worker runs at most one attempt; a worker is idle, running an attempt or
overrunning one (its thread still runs work whose attempt ended), never two of these,
so ``free`` never counts a thread that is still busy; once an attempt has been
reported (finished, lost or handed back) a later report for it is dropped, so the
Scheduler hears of each attempt once; a result leaves ``unacked`` only when
acknowledged, and an outbox entry is released when the last result in it is; an
overdue attempt is named once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from actorwork.clock import Now
from actorwork.errors import ConfigError
from actorwork.messages import JobKey, JobSpec, Outcome, WorkResult

__all__ = ["Attempt", "PoolState"]


@dataclass(frozen=True)
class Attempt:
    """One attempt running on worker ``worker`` since ``since``."""

    spec: JobSpec
    worker: str
    since: Now

    @property
    def key(self) -> JobKey:
        return JobKey(self.spec.id, self.spec.attempt)


@dataclass
class PoolState:
    """Workers, attempts and unacknowledged results of one Pool; see the module docstring.

    ``heartbeat`` is the seconds between the Pool's heartbeats; ``resend_after`` how
    many of them a report or the Scheduler may stay unanswered; ``timeout_grace`` the
    seconds an attempt may overrun its job's timeout (at least a tenth of the timeout)
    before its worker is stopped.
    """

    name: str
    heartbeat: float = 5.0
    resend_after: int = 3
    timeout_grace: float = 1.0
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
    #: When the Scheduler last answered: a heartbeat taken, or the link made (monotonic).
    answered: float = 0.0
    #: When a drain ends (monotonic); None until one begins. No work is taken after.
    drain_deadline: float | None = None
    #: Running attempts already named overdue: each is named once (a subset of running).
    stopping: set[JobKey] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.heartbeat) and self.heartbeat > 0):
            raise ConfigError(f"pool heartbeat must be a positive number, got {self.heartbeat!r}")
        if self.resend_after < 1:
            raise ConfigError(f"pool resend_after must be at least 1, got {self.resend_after!r}")
        if not (math.isfinite(self.timeout_grace) and self.timeout_grace >= 0):
            raise ConfigError(
                f"pool timeout_grace must be a number of seconds, got {self.timeout_grace!r}"
            )

    @property
    def patience(self) -> float:
        """Seconds a report or the Scheduler may stay unanswered: ``resend_after`` beats."""
        return self.resend_after * self.heartbeat

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

    def assign(self, spec: JobSpec, now: Now) -> Attempt | WorkResult | None:
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
        attempt = self._end(JobKey(result.job_id, result.attempt))
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

    def lose(self, worker: str, error: str, now: Now) -> WorkResult | None:
        """Worker ``worker`` is gone: its attempt, if any, ends ``lost``.

        The worker is not idle again; the shell adds its replacement.
        """
        attempt = self.attempt_of(worker)
        if attempt is None:
            return None
        self._end(attempt.key)
        return self._ended(attempt, "lost", error, now)

    def hand_back(self, now: Now) -> list[tuple[Attempt, WorkResult]]:
        """End every running attempt as ``returned`` (the pool is stopping)."""
        ended = [
            (attempt, self._ended(attempt, "returned", f"pool {self.name!r} stopped", now))
            for attempt in self.running.values()
        ]
        for attempt, _ in ended:
            self.idle.append(attempt.worker)
        self.running.clear()
        self.stopping.clear()
        return ended

    def _end(self, key: JobKey) -> Attempt | None:
        self.stopping.discard(key)
        return self.running.pop(key, None)

    def _ended(self, attempt: Attempt, outcome: Outcome, error: str, now: Now) -> WorkResult:
        return WorkResult(
            job_id=attempt.spec.id,
            attempt=attempt.spec.attempt,
            outcome=outcome,
            error=error,
            started=attempt.since.wall,
            finished=now.wall,
            pool=self.name,
            worker=attempt.worker,
        )

    # --- overrun attempts -----------------------------------------------------------------

    def deadline(self, attempt: Attempt) -> float | None:
        """When ``attempt`` is overdue (monotonic): its job's timeout plus the grace, or a
        tenth of the timeout if that is longer; None for a job without a timeout."""
        timeout = attempt.spec.timeout
        if timeout is None:
            return None
        return attempt.since.mono + timeout + max(self.timeout_grace, timeout * 0.1)

    def overdue(self, now: Now) -> list[Attempt]:
        """Attempts past their deadline, not named before: stop their workers. Each
        attempt is named once, however often this is asked."""
        late = [attempt for attempt, deadline in self._watched() if now.mono >= deadline]
        self.stopping.update(attempt.key for attempt in late)
        return late

    def next_deadline(self) -> float | None:
        """The earliest deadline of an attempt not yet named overdue; None if none has
        one: when to ask :meth:`overdue` next."""
        return min((deadline for _, deadline in self._watched()), default=None)

    def _watched(self) -> list[tuple[Attempt, float]]:
        """Running attempts with a deadline, not yet named overdue, and their deadlines."""
        return [
            (attempt, deadline)
            for attempt in self.running.values()
            if attempt.key not in self.stopping and (deadline := self.deadline(attempt)) is not None
        ]

    # --- graceful stop ----------------------------------------------------------------------

    @property
    def draining(self) -> bool:
        """True once a drain began: no more work is asked for or taken."""
        return self.drain_deadline is not None

    def drain(self, grace: float, now: Now) -> bool:
        """Begin a drain that lets running attempts finish for ``grace`` seconds; True if
        this began it. A drain already under way keeps the earlier of the two deadlines:
        a second signal can shorten the grace, never lengthen it."""
        if math.isnan(grace) or grace < 0:
            raise ConfigError(f"drain grace must be zero or more seconds, got {grace!r}")
        deadline = now.mono + grace
        if self.drain_deadline is not None:
            self.drain_deadline = min(self.drain_deadline, deadline)
            return False
        self.drain_deadline = deadline
        return True

    def drain_left(self, now: Now) -> float:
        """Seconds the running attempts still have to finish before they are handed back
        (0.0 once the drain's deadline passed; infinite while not draining)."""
        if self.drain_deadline is None:
            return math.inf
        return max(0.0, self.drain_deadline - now.mono)

    # --- the Scheduler's answers --------------------------------------------------------------

    def linked(self, now: Now) -> None:
        """A link to the Scheduler was made: it counts as an answer."""
        self.answered = now.mono

    def heartbeat_answered(self, now: Now) -> None:
        """The Scheduler took a heartbeat."""
        self.answered = max(self.answered, now.mono)

    def silent(self, now: Now) -> bool:
        """The Scheduler answered nothing for ``resend_after`` heartbeats: the link is
        open but nothing comes through (half-open, partitioned, stuck); close it."""
        return now.mono - self.answered >= self.patience

    # --- results waiting for acknowledgement ----------------------------------------------

    def hold(self, entry: str, results: list[WorkResult], now: Now | None = None) -> None:
        """``results`` are persisted in outbox entry ``entry`` and reported at ``now``
        (None: not reported yet; they go out with the next :meth:`to_deliver`): keep
        them until acked."""
        if results:
            self.entries[entry] = {r.key for r in results}
            for result in results:
                self.unacked[result.key] = (result, entry)
                self.reported[result.key] = -math.inf if now is None else now.mono

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

    def to_deliver(self, now: Now | None = None) -> list[WorkResult]:
        """Every result still waiting for an acknowledgement, oldest first; with ``now``,
        they count as reported then."""
        if now is not None:
            self.reported = dict.fromkeys(self.unacked, now.mono)
        return [result for result, _ in self.unacked.values()]

    def unanswered(self, now: Now) -> list[WorkResult]:
        """Results reported ``resend_after`` heartbeats ago or more and still not
        acknowledged: the report or its acknowledgement went missing. They count as
        reported now."""
        late = [key for key, at in self.reported.items() if now.mono - at >= self.patience]
        for key in late:
            self.reported[key] = now.mono
        return [self.unacked[key][0] for key in late]
