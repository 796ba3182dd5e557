"""What a job store is: the records it keeps, the changes it applies, the contract.

A store holds the durable state of a job system: one row per job, every attempt's
result that reached the Scheduler, the cron schedules with their fences, and which
Scheduler leads (its lease and epoch). The Scheduler keeps its live jobs in memory and
hands the store batches of :data:`StoreEffect` to make durable, one transaction per
batch (a group commit).

Retention: a store does not grow without bound. :class:`Retention` says how long
finished jobs are kept, by status and per work; the Scheduler asks the store for a
small batch of jobs past it (:meth:`JobStore.expired`), forgets those that are not
live, and lets the store give the space back (:meth:`JobStore.reclaim`). A job is
forgotten with its results and artifacts, and never while it is live.

Backends are chosen by URL in :mod:`actorwork.stores.registry`;
:mod:`actorwork.stores.sqlite` is the embedded default.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from actorwork.messages import JobKey, JobStatus, JobView, WorkResult
from actorwork.work import FINISHED, Keep, Limit, Work

__all__ = [
    "DropSchedule",
    "Forget",
    "Job",
    "JobStore",
    "Persist",
    "PruneRule",
    "Record",
    "Retention",
    "SaveSchedule",
    "SetFence",
    "SetPaused",
    "StoreEffect",
]


@dataclass(slots=True, eq=False)
class Job:
    """One job as the Scheduler tracks it; the persisted fields mirror the store's row."""

    id: str
    work: str
    queue: str
    priority: int
    payload: bytes
    status: JobStatus
    attempt: int
    max_attempts: int
    created: float
    updated: float
    seq: int
    failures: int = 0
    timeout: float | None = None
    unique_key: str | None = None
    due: float | None = None
    error: str = ""
    result: WorkResult | None = None
    progress: float | None = None
    progress_message: str = ""
    #: The jobs this one depends on (persisted), and when it may run (see
    #: :data:`actorwork.messages.When`).
    depends_on: tuple[str, ...] = ()
    when: str = "succeeded"
    #: The workflow this job is a node of, its path in the tree and the workflow's
    #: failure policy (persisted; "" outside a workflow).
    workflow: str = ""
    path: str = ""
    policy: str = ""
    #: Not persisted: how each parent ended and what it returned, as far as known.
    parents: dict[str, tuple[str, bytes | None]] = field(default_factory=dict)
    #: Not persisted (the registry says it again after a restart): the name of the limit
    #: this job counts against, if any, and that limit.
    limit_key: str | None = None
    limit: Limit | None = None
    #: Not persisted: where the current attempt runs and when its lease ends (monotonic).
    pool: str | None = None
    lease_until: float | None = None
    #: The attempt last presumed lost because its lease ran out (not persisted).
    lost_attempt: int = 0
    #: Fields carried from the submit to the work (``ctx.context``), persisted: what
    #: middleware added at the submit (a tenant, a trace context) reaches every attempt,
    #: after a Scheduler restart too.
    context: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> JobKey:
        return JobKey(self.id, self.attempt)

    def view(self) -> JobView:
        return JobView(
            id=self.id,
            work=self.work,
            queue=self.queue,
            priority=self.priority,
            status=self.status,
            attempt=self.attempt,
            max_attempts=self.max_attempts,
            created=self.created,
            updated=self.updated,
            unique_key=self.unique_key,
            due=self.due,
            error=self.error,
            progress=self.progress,
            progress_message=self.progress_message,
            result=self.result,
            depends_on=self.depends_on,
            when=self.when,
            workflow=self.workflow,
            path=self.path,
            policy=self.policy,
        )


# --- the changes a store applies -------------------------------------------------------


@dataclass(frozen=True)
class Persist:
    """Write the job's row as it is at commit time."""

    job: Job


@dataclass(frozen=True)
class Record:
    """Keep an attempt's result; ``committed`` is False for a stale or duplicate one."""

    result: WorkResult
    committed: bool
    note: str = ""


@dataclass(frozen=True)
class Forget:
    """Delete a finished job, its results and its artifacts.

    A job whose stored row is not terminal (it was retried since) is left alone.
    """

    job_id: str


@dataclass(frozen=True)
class SaveSchedule:
    """Write a schedule's definition (its Schedule as MessagePack) and its source."""

    name: str
    definition: bytes
    source: str


@dataclass(frozen=True)
class DropSchedule:
    """Delete a schedule and its fence."""

    name: str


@dataclass(frozen=True)
class SetFence:
    """Move a schedule's fence forward: its fire times up to ``fence`` are decided.

    Committed in the transaction of the job the firing submits, so a fire time is
    fired once, whatever crashes or restarts (I7). ``fence`` is a UTC timestamp.
    """

    name: str
    fence: float


@dataclass(frozen=True)
class SetPaused:
    """Remember that ``queue`` is paused (``paused=False``: forget it), so that a
    Scheduler started again on the store keeps it paused."""

    queue: str
    paused: bool


StoreEffect = Persist | Record | Forget | SaveSchedule | DropSchedule | SetFence | SetPaused


# --- retention ----------------------------------------------------------------------------

_DAY = 24.0


def _default_keep() -> dict[str, Keep]:
    return {
        "succeeded": Keep(hours=_DAY, rows=100_000),
        "failed": Keep(hours=7 * _DAY),
        "dead": Keep(hours=7 * _DAY),
        "cancelled": Keep(hours=_DAY),
        "skipped": Keep(hours=7 * _DAY),
    }


class PruneRule(NamedTuple):
    """Which finished jobs one policy covers: a status, and the works (``only``, or all
    but ``besides``) whose jobs it keeps as ``keep`` says."""

    status: str
    keep: Keep
    only: tuple[str, ...] = ()
    besides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Retention:
    """How long finished jobs stay in the store, and how pruning goes.

    ``keep`` is the policy of each terminal status (a status missing keeps its jobs
    for ever); a work's own ``keep`` (``@work(keep=...)``) wins for its jobs. Every
    ``interval`` seconds the Scheduler forgets at most ``batch`` expired jobs per
    transaction, until none is left; ``interval = 0`` never prunes.
    """

    keep: Mapping[str, Keep] = field(default_factory=_default_keep)
    interval: float = 60.0
    batch: int = 500

    def __post_init__(self) -> None:
        unknown = sorted(set(self.keep) - set(FINISHED))
        if unknown:
            raise ValueError(f"keep status {unknown[0]!r} is not one of: {', '.join(FINISHED)}")
        if not (math.isfinite(self.interval) and self.interval >= 0):
            raise ValueError(f"retention interval must be finite and >= 0, got {self.interval!r}")
        if self.batch < 1:
            raise ValueError(f"retention batch must be at least 1, got {self.batch!r}")

    def rules(self, works: Iterable[Work]) -> list[PruneRule]:
        """The rules that cover every finished job, given the works with their own policy."""
        own: dict[str, dict[str, Keep]] = {}
        for item in works:
            for status, keep in item.keep.items():
                own.setdefault(status, {})[item.name] = keep
        rules = []
        for status in FINISHED:
            special = own.get(status, {})
            default = self.keep.get(status)
            if default is not None and (default.hours is not None or default.rows is not None):
                rules.append(PruneRule(status, default, besides=tuple(sorted(special))))
            rules += [
                PruneRule(status, keep, only=(name,))
                for name, keep in sorted(special.items())
                if keep.hours is not None or keep.rows is not None
            ]
        return rules


class JobStore(Protocol):
    """The contract every store keeps; the Scheduler uses nothing else.

    Every method is a coroutine and may be called from the event loop. Writes are
    fenced: once :meth:`acquire` gave this store an epoch, every write transaction
    first checks that the epoch is still the store's and raises
    :class:`~actorwork.errors.LeadershipLost` otherwise, writing nothing. Errors of the
    backend become :class:`~actorwork.errors.StoreError` naming the store.
    """

    #: Where the store is, as messages show it (a file, or a URL without its password).
    path: str

    @property
    def is_open(self) -> bool: ...

    @property
    def epoch(self) -> int | None:
        """The leadership epoch the writes check; None before :meth:`acquire`."""
        ...

    async def open(self) -> None:
        """Connect, creating or migrating the schema first when the store may write."""

    async def aclose(self) -> None:
        """Release the connections and threads; idempotent."""

    async def apply(self, effects: Sequence[object]) -> None:
        """Make the :data:`StoreEffect` of one batch durable in one transaction: all or none.

        Other effects in ``effects`` (the Scheduler's sends and replies) are passed over.

        The rows are taken when this is called, so the jobs may change while the
        commit runs. A :class:`Persist` of a job forgotten in the same batch is dropped.
        """

    async def live_jobs(self) -> list[Job]:
        """Every job not yet terminal, in submission order (``seq``)."""
        ...

    async def schedules(self) -> list[tuple[bytes, str, float | None]]:
        """Every schedule as (definition, source, fence)."""
        ...

    async def paused_queues(self) -> list[str]:
        """The queues paused (:class:`SetPaused`) and not resumed since, by name."""
        ...

    async def acquire(self, holder: str, until: float, now: float, boot: str) -> int | None:
        """Lead the store until ``until`` if nobody else leads it now: the new epoch, or None."""
        ...

    async def leader(self) -> str | None:
        """Who holds the lease now, if anyone."""
        ...

    async def renew(self, epoch: int, until: float) -> bool:
        """Extend the lease of ``epoch``; False when it is no longer the store's."""
        ...

    async def release(self) -> None:
        """Give up the lease so a standby takes over at once; idempotent."""

    async def max_seq(self) -> int:
        """The highest ``seq`` ever stored (-1 for none)."""
        ...

    async def get(self, job_id: str) -> Job | None:
        """One job, live or finished, or None; its artifacts with their bytes."""
        ...

    async def find(
        self,
        *,
        status: str | None,
        queue: str | None,
        limit: int,
        before: int | None = None,
        work: str | None = None,
        since: float | None = None,
        until: float | None = None,
        workflow: str | None = None,
    ) -> list[Job]:
        """Jobs by status, queue, work and workflow, newest (highest ``seq``) first, at most
        ``limit``; with ``before``, only those whose ``seq`` is lower (the next page);
        with ``since``/``until``, only those created at or after, and before, them.

        Their results carry artifacts as references, without the bytes.
        """
        ...

    async def count(
        self,
        *,
        status: str | None,
        queue: str | None,
        work: str | None = None,
        since: float | None = None,
        until: float | None = None,
        workflow: str | None = None,
    ) -> int:
        """How many jobs :meth:`find` would return with these filters and no limit, as of
        the last commit."""
        ...

    async def expired(self, rules: Sequence[PruneRule], now: float, limit: int) -> list[str]:
        """At most ``limit`` ids of finished jobs past their ``rules`` at ``now`` (a wall
        time), oldest first. Only reads: the Scheduler forgets them (:class:`Forget`)."""
        ...

    async def reclaim(self) -> None:
        """Give the space of forgotten jobs back to the file system, a little at a time."""

    async def attempts(self, job_id: str) -> list[tuple[WorkResult, bool, str]]:
        """Every result stored for a job: (result, committed, note), by attempt."""
        ...

    async def outcomes(self, job_ids: Sequence[str]) -> dict[str, tuple[str, bytes | None]]:
        """How each of the finished jobs among ``job_ids`` ended: (status, return value
        as MessagePack, None when it left none). Live and unknown ids are left out."""
        ...
