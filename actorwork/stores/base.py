"""What a job store is: the records it keeps, the changes it applies, the contract.

A store holds the durable state of a job system: one row per job, every attempt's
result that reached the Scheduler, the cron schedules with their fences, and which
Scheduler leads (its lease and epoch). The Scheduler keeps its live jobs in memory and
hands the store batches of :data:`StoreEffect` to make durable, one transaction per
batch (a group commit). Backends are chosen by URL in :mod:`actorwork.stores.registry`;
:mod:`actorwork.stores.sqlite` is the embedded default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from actorwork.messages import JobKey, JobStatus, JobView, WorkResult

__all__ = [
    "DropSchedule",
    "Forget",
    "Job",
    "JobStore",
    "Persist",
    "Record",
    "SaveSchedule",
    "SetFence",
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
    #: Not persisted: where the current attempt runs and when its lease ends (monotonic).
    pool: str | None = None
    lease_until: float | None = None
    #: The attempt last presumed lost because its lease ran out (not persisted).
    lost_attempt: int = 0

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
    """Delete a finished job and its results."""

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


StoreEffect = Persist | Record | Forget | SaveSchedule | DropSchedule | SetFence


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
        """One job, live or finished, or None."""
        ...

    async def find(self, *, status: str | None, queue: str | None, limit: int) -> list[Job]:
        """Jobs by status and queue, newest first, at most ``limit``."""
        ...

    async def attempts(self, job_id: str) -> list[tuple[WorkResult, bool, str]]:
        """Every result stored for a job: (result, committed, note), by attempt."""
        ...
