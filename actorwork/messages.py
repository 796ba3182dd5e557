"""Every message that crosses a connection: tagged, frozen msgspec Structs.

User messages subclass :class:`Message`::

    class Greet(actorwork.Message):
        name: str

    class Greeting(actorwork.Message):   # replies end in "Reply" or name a result
        text: str

Rules: commands are imperative (``SpawnActor``), events past tense
(``ActorSpawned``), replies end in ``Reply``. A message's tag (its class name unless
``tag="..."`` is given) never changes once released; new fields get defaults, so old
and new peers still understand each other. Tags must be unique across the process;
a clash is reported when the codec is next used.

The envelope that carries a message is not a Message: it is a fixed-layout array
defined in :mod:`actorwork.codec`, versioned by the handshake's protocol version.

Every number a peer can send is bounded, and checked (by msgspec, in C) where the
message is decoded, so a value that the store, a heap of deadlines or a loop could
choke on never reaches an actor: counts and attempts fit a signed 32-bit integer,
seconds are finite and at most :data:`MAX_SECONDS`, wall-clock times lie between the
epoch and :data:`MAX_TIMESTAMP`, fractions between 0 and 1. Names and ids are at most
:data:`MAX_NAME` characters and lists at most :data:`MAX_ITEMS` items. Text that user
code produces (errors, tracebacks, log lines, progress messages) is bounded by the
frame cap alone: refusing a result for its length would run its job again and again.
A message out of bounds is refused naming the field and its value
(:meth:`actorwork.codec.Codec.decode_body`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta

from actorwork.schedules import Schedule

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_FIRE_TIMES",
    "MAX_INT",
    "MAX_ITEMS",
    "MAX_KEY",
    "MAX_NAME",
    "MAX_SECONDS",
    "MAX_SLOTS",
    "MAX_TIMESTAMP",
    "TERMINAL",
    "TIMING_BUCKETS",
    "ActorSpawned",
    "AddSchedule",
    "Artifact",
    "AttemptRecord",
    "AttemptsReply",
    "AwaitJob",
    "CancelJob",
    "DeleteJob",
    "DrainPool",
    "EnableSchedule",
    "ExecuteJob",
    "FailureReply",
    "GetAttempts",
    "GetJob",
    "GetStats",
    "JobContext",
    "JobCount",
    "JobKey",
    "JobListReply",
    "JobOutput",
    "JobProgressed",
    "JobReply",
    "JobSpec",
    "JobStatus",
    "JobView",
    "ListJobs",
    "ListPools",
    "ListQueues",
    "ListSchedules",
    "LogLine",
    "Message",
    "NotLeaderReply",
    "Outcome",
    "PauseQueue",
    "Ping",
    "Pong",
    "PoolDrainedReply",
    "PoolHeartbeat",
    "PoolListReply",
    "PoolReady",
    "PoolView",
    "QueueListReply",
    "QueueView",
    "RemoveSchedule",
    "ReportResult",
    "ReportResults",
    "RequestWork",
    "ResultAcknowledged",
    "ResultsAcknowledged",
    "RetryJob",
    "RunJob",
    "RunJobs",
    "RunSchedule",
    "RunningAttempt",
    "ScheduleListReply",
    "ScheduleView",
    "SpawnActor",
    "StatsReply",
    "StopJob",
    "SubmitJob",
    "SubmitJobs",
    "SubmitJobsReply",
    "SubmitRefusedReply",
    "SubmittedReply",
    "Terminated",
    "Timings",
    "WatchActor",
    "When",
    "WorkFinished",
    "WorkResult",
    "WorkerFreed",
    "message_types",
]

_message_types: list[type[Message]] = []

# --- bounds -----------------------------------------------------------------------------

#: The largest priority, attempt or count a message carries (and the smallest priority
#: is its negative): far from what SQLite's 64-bit integers overflow at.
MAX_INT = 2**31 - 1
#: The most attempts a job may be given.
MAX_ATTEMPTS = 1_000_000
#: The most slots a Pool may offer, and the most jobs it may say it runs.
MAX_SLOTS = 1_000_000
#: The longest duration a message carries (timeouts, waits, leases, graces): ten years.
MAX_SECONDS = 10 * 365 * 86400.0
#: The latest wall-clock time a message carries: 3000-01-01 UTC.
MAX_TIMESTAMP = 32_503_680_000.0
#: The longest name or id (works, queues, pools, actors, jobs, schedules, statuses).
MAX_NAME = 256
#: The longest unique key or factory path.
MAX_KEY = 1024
#: The most items of a list in one message (submits, results, running attempts). A
#: client sends at most 256 KiB of payloads in one batch, so at most 2**18 submits.
MAX_ITEMS = 2**18
#: The most fire times a listing of schedules may ask for, per schedule.
MAX_FIRE_TIMES = 1000

Priority = Annotated[int, Meta(ge=-MAX_INT - 1, le=MAX_INT)]
Attempt = Annotated[int, Meta(ge=0, le=MAX_INT)]
MaxAttempts = Annotated[int, Meta(ge=1, le=MAX_ATTEMPTS)]
Count = Annotated[int, Meta(ge=0, le=MAX_INT)]
Slots = Annotated[int, Meta(ge=0, le=MAX_SLOTS)]
#: Finite seconds, 0 or more (a NaN fails every bound, so it is refused too).
Seconds = Annotated[float, Meta(ge=0.0, le=MAX_SECONDS)]
#: Finite seconds, more than 0.
PositiveSeconds = Annotated[float, Meta(gt=0.0, le=MAX_SECONDS)]
Timestamp = Annotated[float, Meta(ge=0.0, le=MAX_TIMESTAMP)]
Fraction = Annotated[float, Meta(ge=0.0, le=1.0)]
Name = Annotated[str, Meta(max_length=MAX_NAME)]
Key = Annotated[str, Meta(max_length=MAX_KEY)]
#: Fields carried with a job for its work and middleware (a tenant, a trace id): at
#: most 64 of them, names of at most 256 characters, values of at most 1024.
JobContext = Annotated[dict[Name, Key], Meta(max_length=64)]


if TYPE_CHECKING:
    # Type checkers reject subclasses of a frozen dataclass-like base that do not
    # repeat ``frozen=True``; users should not have to. At runtime msgspec passes
    # ``frozen`` down to every subclass, so assigning to a field still raises.
    _Base = msgspec.Struct
else:

    class _Base(msgspec.Struct, frozen=True):
        pass


class Message(_Base, tag=True, tag_field="type"):
    """Base of every message an actor sends or receives. Frozen: fields cannot change."""

    _generation: ClassVar[int] = 0

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _message_types.append(cls)
        Message._generation += 1


def message_types() -> tuple[type[Message], ...]:
    """All Message subclasses defined so far, in definition order."""
    return tuple(_message_types)


class FailureReply(Message, tag="aw.failure"):
    """The answer to an ask whose handler raised, or that could not be delivered."""

    error_type: str
    message: str
    actor: str = ""
    #: True when the actor's handler raised; False when the runtime refused the message.
    raised_by_handler: bool = False


class Terminated(Message, tag="aw.terminated"):
    """Sent to watchers when the watched actor stops or becomes unreachable."""

    name: Name
    reason: str = ""


class SpawnActor(Message, tag="aw.spawn"):
    """Ask a system's ``_system`` actor to create an actor from an importable class.

    ``factory`` is ``"package.module:ClassName"``; ``kwargs`` go to its constructor.
    """

    factory: Key
    name: Name
    kwargs: dict[str, Any] = {}


class WatchActor(Message, tag="aw.watch"):
    """Ask a system's ``_system`` actor to send the sender Terminated when ``name`` stops."""

    name: Name


class ActorSpawned(Message, tag="aw.spawned"):
    """Reply to :class:`SpawnActor`."""

    name: str


class Ping(Message, tag="aw.ping"):
    """Liveness probe; any actor that accepts it answers :class:`Pong`.

    Every system's ``_system`` actor does, and so does the Scheduler while it leads its
    store: ``Client.ping()`` and ``actorwork ping`` ask it, a readiness check.
    """

    payload: Annotated[bytes, Meta(max_length=MAX_KEY)] = b""


class Pong(Message, tag="aw.pong"):
    """Reply to :class:`Ping`, carrying its payload back."""

    payload: Annotated[bytes, Meta(max_length=MAX_KEY)] = b""


class NotLeaderReply(Message, tag="aw.scheduler.not-leader"):
    """What a Scheduler in standby answers every ask with: it does not lead its store.

    ``leader`` is the address the leading Scheduler advertises, as far as this one
    knows (None while nobody leads, or the leader advertised none): Pools and clients
    given several Scheduler addresses connect there next.
    """

    leader: Key | None = None


# --- the job system: the data that travels inside messages ------------------------------

#: How one attempt ended. ``failed`` is the work's own verdict (it raised
#: :class:`actorwork.WorkFailed`) and is not retried; ``error`` (an exception),
#: ``timeout`` and ``lost`` (the worker died or exited without a result) are retried
#: while attempts remain; ``cancelled`` ends the job; ``returned`` hands the job back
#: unrun (a pool stopping) and costs no attempt.
Outcome = Literal["succeeded", "failed", "error", "timeout", "lost", "cancelled", "returned"]

#: Where a job is. Terminal: succeeded, failed, dead, cancelled, skipped. ``waiting``
#: holds a job until the jobs it depends on end; ``skipped`` ends it when they ended in a
#: way that can no longer satisfy it (see :data:`When`).
JobStatus = Literal[
    "scheduled",
    "queued",
    "running",
    "retrying",
    "succeeded",
    "failed",
    "dead",
    "cancelled",
    "waiting",
    "skipped",
]

TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "dead", "cancelled", "skipped"})

#: When a job that depends on others may run: once every parent ``succeeded``; once
#: every parent ``failed`` (failed or dead); once every parent ``finished``, however.
When = Literal["succeeded", "finished", "failed"]

#: What a workflow does when one of its nodes fails: ``stop`` ends the rest of it at
#: once (pending nodes skipped, running ones cancelled); ``finish`` runs whatever does
#: not depend on the failed node. "" for a job outside any workflow.
Policy = Literal["stop", "finish", ""]


# The structs a job leaves behind by the thousand (results, views, their log lines) are
# not tracked by the garbage collector (gc=False): they hold decoded data, never a
# cycle, and a Scheduler caching recent results would otherwise make every full
# collection walk them all.


class LogLine(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """One line a job logged or printed, in the order it was written.

    ``source`` is ``log`` (the work's own logger), ``logging`` (a stdlib record),
    ``stdout`` or ``stderr``; ``time`` is wall-clock seconds since the epoch.
    """

    time: Timestamp
    source: Name
    level: Name
    text: str
    fields: dict[str, Any] = {}


class Artifact(msgspec.Struct, frozen=True):
    """A file the work produced (a PDF, a PNG), carried with its result.

    A store keeps the bytes in a file of their own, named by their SHA-256, and the
    result keeps a reference: ``sha256`` and ``size`` set, ``data`` empty. A job's
    artifacts come back with their bytes when the job is asked for by id (the
    Scheduler reads the files), as references in listings.
    """

    name: Key
    data: bytes
    media_type: Key = "application/octet-stream"
    sha256: Annotated[str, Meta(max_length=64)] = ""
    size: Annotated[int, Meta(ge=0, le=2**53)] = 0

    @property
    def is_reference(self) -> bool:
        """True when the bytes are in the store's file, not here."""
        return bool(self.sha256) and not self.data


class JobKey(msgspec.Struct, frozen=True, array_like=True):
    """One attempt of one job: what results and leases are fenced by."""

    job_id: Name
    attempt: Attempt


class JobSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What a worker needs to run one attempt of a job.

    ``payload`` is MessagePack, validated against the work's payload type again in
    the worker.
    """

    id: Name
    work: Name
    payload: bytes
    attempt: Attempt
    queue: Name = "default"
    #: From the work's registration when the submit named none, which may be ``inf``
    #: (no limit); a Pool compares it, nothing more, so only NaN and 0 are refused.
    timeout: Annotated[float, Meta(gt=0.0)] | None = None
    #: The submit's context (see :class:`SubmitJob`), seen by the work as ``ctx.context``.
    context: JobContext = {}
    #: The return values (MessagePack; None when a parent left none) of the jobs this
    #: one depends on, by job id: :attr:`actorwork.work.WorkContext.parents`.
    parents: Annotated[dict[Name, bytes | None], Meta(max_length=MAX_ITEMS)] = {}


class WorkResult(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The outcome of one attempt: what the Pool persists and reports.

    ``value`` is the work's return value as MessagePack; ``error`` is
    ``"ExceptionType: text"`` and ``traceback`` its formatted traceback.
    """

    job_id: Name
    attempt: Attempt
    outcome: Outcome
    value: bytes | None = None
    error: str = ""
    traceback: str = ""
    #: Tuples, not lists: an empty one is shared, and a full one of untracked lines is
    #: left alone by the garbage collector, which matters by the ten thousand.
    logs: tuple[LogLine, ...] = ()
    progress: Fraction | None = None
    progress_message: str = ""
    started: Timestamp = 0.0
    finished: Timestamp = 0.0
    artifacts: tuple[Artifact, ...] = ()
    pool: Name = ""
    worker: Name = ""

    @property
    def key(self) -> JobKey:
        return JobKey(self.job_id, self.attempt)


class JobView(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A job as the Scheduler knows it; ``result`` is its latest attempt's result."""

    id: str
    work: str
    queue: str
    priority: int
    status: JobStatus
    attempt: int
    max_attempts: int
    created: float
    updated: float
    unique_key: str | None = None
    due: float | None = None
    error: str = ""
    progress: float | None = None
    progress_message: str = ""
    result: WorkResult | None = None
    #: Why a queued job is not dispatched when no connected pool can run it, or a limit
    #: holds it, or (``waiting``) which parents it waits for; else "".
    waiting: str = ""
    #: The jobs this one depends on, and when it may run (see :data:`When`).
    depends_on: tuple[str, ...] = ()
    when: str = "succeeded"
    #: The workflow this job is a node of, its path in the tree (``report.charts[2]``)
    #: and the workflow's failure policy; "" outside a workflow.
    workflow: str = ""
    path: str = ""
    policy: str = ""


# --- clients and the Scheduler ----------------------------------------------------------


class SubmitJob(Message, tag="aw.job.submit"):
    """Ask the Scheduler to queue a job; answered once the job is durably stored.

    ``None`` options take the work's registered defaults. With a ``unique_key``
    that a job not yet finished already holds, that job's id is returned instead.
    """

    work: Name
    payload: bytes
    job_id: Name = ""
    queue: Name | None = None
    priority: Priority | None = None
    max_attempts: MaxAttempts | None = None
    timeout: PositiveSeconds | None = None
    unique_key: Key | None = None
    due: Timestamp | None = None
    #: Fields carried with the job (middleware adds them): ``ctx.context`` in the work.
    context: JobContext = {}
    #: Ids of jobs that must end first (they must exist); ``when`` says how.
    depends_on: Annotated[list[Name], Meta(max_length=MAX_ITEMS)] = []
    when: When = "succeeded"
    #: The workflow the job is a node of, its path there, and the workflow's policy.
    workflow: Name = ""
    path: Key = ""
    policy: Policy = ""


class SubmittedReply(Message, tag="aw.job.submitted"):
    job_id: str
    #: False when a unique key matched a job that already existed.
    created: bool = True


class SubmitRefusedReply(Message, tag="aw.job.refused"):
    """A submit was refused: ``error_type`` is the error class to raise at the client."""

    error_type: str
    reason: str


class SubmitJobs(Message, tag="aw.job.submit-many"):
    """Several submits in one message; answered once every job in it is handled.

    A client sends the submits made in one turn of its event loop together, so many
    concurrent submitters cost one message and one commit, not one each.
    """

    jobs: Annotated[list[SubmitJob], Meta(max_length=MAX_ITEMS)]


class SubmitJobsReply(Message, tag="aw.job.submit-many-reply"):
    """One reply per submit of a :class:`SubmitJobs`, in the same order."""

    replies: list[SubmittedReply | SubmitRefusedReply]


class GetJob(Message, tag="aw.job.get"):
    job_id: Name


class AwaitJob(Message, tag="aw.job.await"):
    """Answered with the job once it is terminal, or as it is after ``wait`` seconds."""

    job_id: Name
    wait: Seconds = 30.0


class CancelJob(Message, tag="aw.job.cancel"):
    job_id: Name
    reason: str = "cancelled by request"


class RetryJob(Message, tag="aw.job.retry"):
    """Put a dead (or failed) job back in its queue with fresh attempts."""

    job_id: Name


class DeleteJob(Message, tag="aw.job.delete"):
    """Forget a finished job and its result."""

    job_id: Name


class JobReply(Message, tag="aw.job.reply"):
    job: JobView | None


class ListJobs(Message, tag="aw.job.list"):
    """One page of jobs, newest first: at most ``limit`` (the Scheduler may send fewer).

    ``before`` is the ``next`` of the previous page's reply: the page starts after it.
    """

    status: Name | None = None
    queue: Name | None = None
    limit: Count = 100
    before: Annotated[int, Meta(ge=-1, le=2**62)] | None = None
    #: Only jobs of this work.
    work: Name | None = None
    #: Only jobs created at or after ``since`` and before ``until`` (wall-clock seconds).
    since: Timestamp | None = None
    until: Timestamp | None = None
    #: Only the nodes of this workflow.
    workflow: Name | None = None
    #: Also count every job the filters match (``before`` and ``limit`` aside).
    count: bool = False


class JobListReply(Message, tag="aw.job.list-reply"):
    """A page of jobs; ``next`` is the ``before`` of the following page, None at the end.

    ``count``, when asked for, is how many jobs the filters match in the store as of its
    last commit: a job submitted or changed in the last moments may not be counted yet.
    """

    jobs: list[JobView]
    next: int | None = None
    count: int | None = None


class GetAttempts(Message, tag="aw.job.attempts"):
    """Every result of a job the Scheduler recorded, committed or not: its diagnostics."""

    job_id: Name


class AttemptRecord(msgspec.Struct, frozen=True):
    """One recorded result; ``note`` says why it was not committed (e.g. superseded)."""

    result: WorkResult
    committed: bool
    note: str = ""


class AttemptsReply(Message, tag="aw.job.attempts-reply"):
    attempts: list[AttemptRecord]


# --- queues, pools and the Scheduler's own readings -------------------------------------


class ListQueues(Message, tag="aw.queue.list"):
    """Every queue the Scheduler knows (one with live jobs, a pool serving it, or
    paused), with its depth and its oldest ready job's age."""


class PauseQueue(Message, tag="aw.queue.pause"):
    """Stop dispatching from ``queue`` (``paused=False``: start again). Jobs are still
    accepted and queued; running ones go on. Answered with a :class:`QueueListReply`
    holding the queue."""

    queue: Name
    paused: bool = True


class QueueView(msgspec.Struct, frozen=True, kw_only=True):
    """One queue: its live jobs by status, and how long its oldest ready job waited.

    ``oldest_age`` is seconds since the oldest queued job was last queued (0 when none
    is); ``paused`` queues dispatch nothing.
    """

    name: str
    queued: int = 0
    running: int = 0
    scheduled: int = 0
    retrying: int = 0
    oldest_age: float = 0.0
    paused: bool = False


class QueueListReply(Message, tag="aw.queue.list-reply"):
    queues: list[QueueView]


class ListPools(Message, tag="aw.pool.list"):
    """Every pool that introduced itself, with what it runs now."""


class RunningAttempt(msgspec.Struct, frozen=True, kw_only=True):
    """An attempt a pool runs: ``since`` is the wall time it was dispatched."""

    job_id: str
    work: str
    queue: str
    attempt: int
    since: float


class PoolView(msgspec.Struct, frozen=True, kw_only=True):
    """One pool as the Scheduler sees it.

    ``capacity`` is what it said it can run at once, ``free`` the slots it asked for
    and was not sent yet, ``busy`` its running attempts; ``heartbeat_age`` seconds since
    the Scheduler last heard from it. The Scheduler knows attempts, not which of the
    pool's workers runs each.
    """

    name: str
    queues: list[str]
    works: list[str] | None
    connected: bool
    capacity: int
    free: int
    busy: list[RunningAttempt]
    heartbeat_age: float
    #: Results in its outbox not yet acknowledged by the Scheduler, as its latest
    #: heartbeat said.
    backlog: int = 0


class PoolListReply(Message, tag="aw.pool.list-reply"):
    pools: list[PoolView]


class GetStats(Message, tag="aw.scheduler.stats"):
    """The Scheduler's own readings, for metrics."""


class JobCount(msgspec.Struct, frozen=True, array_like=True):
    """How many jobs of one work and queue are (or ended) in one status."""

    work: str
    queue: str
    status: str
    count: int


#: The upper bounds, in seconds, of the buckets of a :class:`Timings` (a last bucket
#: holds what is longer): from a millisecond to an hour.
TIMING_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
)


class Timings(msgspec.Struct, frozen=True, array_like=True):
    """A histogram of durations: ``counts[i]`` of them took at most
    ``TIMING_BUCKETS[i]`` seconds and more than the bound before (the last count: more
    than every bound), ``total`` seconds in all. ``name`` is what they are of (a work)."""

    name: Name
    counts: Annotated[list[Annotated[int, Meta(ge=0)]], Meta(max_length=64)]
    total: Annotated[float, Meta(ge=0.0)]


class StatsReply(Message, tag="aw.scheduler.stats-reply"):
    """``live`` counts the live jobs now; ``finished`` the jobs that ended since this
    Scheduler started, by outcome. ``commits`` store commits took ``commit_seconds``
    in all (``commit_last`` the latest; ``commit_times`` their histogram); ``loop_lag``
    is how late its latest tick woke. Per work, since this Scheduler started:
    ``queue_waits`` how long jobs waited queued before their dispatch, ``run_times``
    how long attempts ran (as their workers timed them)."""

    live: list[JobCount]
    finished: list[JobCount]
    commits: int = 0
    commit_seconds: float = 0.0
    commit_last: float = 0.0
    loop_lag: float = 0.0
    commit_times: Timings | None = None
    queue_waits: Annotated[list[Timings], Meta(max_length=MAX_ITEMS)] = []
    run_times: Annotated[list[Timings], Meta(max_length=MAX_ITEMS)] = []


# --- schedules --------------------------------------------------------------------------


class AddSchedule(Message, tag="aw.schedule.add"):
    """Add a cron schedule, or replace the one of its name (which keeps its fence).

    Answered with a :class:`ScheduleListReply` holding the schedule once it is stored,
    or a :class:`SubmitRefusedReply` naming what is wrong with it.
    """

    schedule: Schedule


class RemoveSchedule(Message, tag="aw.schedule.remove"):
    name: Name


class EnableSchedule(Message, tag="aw.schedule.enable"):
    """Let a schedule fire again (from now on: time spent disabled is not missed), or
    with ``enabled=False`` stop it."""

    name: Name
    enabled: bool = True


class RunSchedule(Message, tag="aw.schedule.run"):
    """Submit a schedule's job now, apart from its fire times (its fence is untouched).

    Answered with a :class:`JobReply` once the job is stored, or a
    :class:`SubmitRefusedReply` naming what is wrong.
    """

    name: Name


class ListSchedules(Message, tag="aw.schedule.list"):
    """Every schedule, with its next ``count`` fire times."""

    count: Annotated[int, Meta(ge=0, le=MAX_FIRE_TIMES)] = 3


class ScheduleView(msgspec.Struct, frozen=True, kw_only=True):
    """A schedule as the Scheduler runs it.

    ``fence`` is its latest decided fire time, ``next_fires`` the fire times to come
    (UTC timestamps; empty while disabled), ``waiting`` whether a firing waits for a
    live job to end (``overlap = "queue"``), ``live`` how many of its jobs are live.
    """

    schedule: Schedule
    source: str
    fence: float
    next_fires: list[float]
    waiting: bool = False
    live: int = 0


class ScheduleListReply(Message, tag="aw.schedule.list-reply"):
    schedules: list[ScheduleView]


# --- Pools and the Scheduler ------------------------------------------------------------


class PoolReady(Message, tag="aw.pool.ready"):
    """A Pool (re)introduces itself: what it runs, and how many jobs it can take now.

    ``works`` names the works it can run (None: it does not say, and is sent any);
    ``incarnation`` is drawn at random when its process starts, so the Scheduler tells
    a Pool that reconnects from one that was restarted ("": it does not say).
    """

    pool: Name
    queues: Annotated[list[Name], Meta(max_length=MAX_NAME)]
    capacity: Slots
    free: Slots
    running: Annotated[list[JobKey], Meta(max_length=MAX_ITEMS)] = []
    works: Annotated[list[Name], Meta(max_length=MAX_ITEMS)] | None = None
    incarnation: Name = ""


class RequestWork(Message, tag="aw.pool.request"):
    """A Pool has ``slots`` more room: the Scheduler may send that many more jobs."""

    pool: Name
    slots: Slots = 1


class PoolHeartbeat(Message, tag="aw.pool.heartbeat"):
    """The Pool is alive and these attempts are still running: extend their leases.

    ``unresponsive`` are the attempts it holds whose workers did not answer: they earn
    no lease, but the Pool has them. ``works`` is given when the works it can run
    changed since it last said (None: unchanged). ``overrunning`` are attempts that
    ended (timed out, cancelled) while their sync work still runs in its worker's
    thread; each holds a worker busy until it returns.
    """

    pool: Name
    running: Annotated[list[JobKey], Meta(max_length=MAX_ITEMS)] = []
    works: Annotated[list[Name], Meta(max_length=MAX_ITEMS)] | None = None
    unresponsive: Annotated[list[JobKey], Meta(max_length=MAX_ITEMS)] = []
    overrunning: Annotated[list[JobKey], Meta(max_length=MAX_ITEMS)] = []
    #: Results the Pool holds that the Scheduler has not acknowledged yet.
    backlog: Annotated[int, Meta(ge=0, le=MAX_ITEMS)] = 0


class JobProgressed(Message, tag="aw.job.progressed"):
    job_id: Name
    attempt: Attempt
    fraction: Fraction | None
    message: str = ""


class JobOutput(Message, tag="aw.job.output"):
    """What a running attempt did lately, forwarded by its worker and Pool while it runs.

    A worker sends one at most every few tens of milliseconds, or sooner when many
    lines wait; what an attempt writes also stays in its result. ``started`` is set in
    the first one an attempt sends; ``progressed`` says that ``fraction`` and
    ``message`` are new; ``artifacts`` are the names of files it added since the last.
    """

    job_id: Name
    attempt: Attempt
    pool: Name = ""
    worker: Name = ""
    started: Timestamp | None = None
    logs: Annotated[list[LogLine], Meta(max_length=MAX_ITEMS)] = []
    progressed: bool = False
    fraction: Fraction | None = None
    message: str = ""
    artifacts: Annotated[list[Key], Meta(max_length=MAX_ITEMS)] = []


class ReportResult(Message, tag="aw.pool.result"):
    """A persisted result; the Scheduler answers with :class:`ResultAcknowledged`."""

    result: WorkResult


class RunJob(Message, tag="aw.pool.run"):
    """The Scheduler hands a job to a Pool; ``lease`` is seconds until it is presumed lost."""

    job: JobSpec
    lease: PositiveSeconds


class RunJobs(Message, tag="aw.pool.run-many"):
    """Several :class:`RunJob` to one Pool from one commit, in one message."""

    jobs: Annotated[list[JobSpec], Meta(max_length=MAX_ITEMS)]
    lease: PositiveSeconds


class ReportResults(Message, tag="aw.pool.results"):
    """Several :class:`ReportResult` persisted in one outbox write, in one message."""

    results: Annotated[list[WorkResult], Meta(max_length=MAX_ITEMS)]


class ResultsAcknowledged(Message, tag="aw.pool.acks"):
    """Several :class:`ResultAcknowledged` from one commit, in one message."""

    keys: Annotated[list[JobKey], Meta(max_length=MAX_ITEMS)]


class ResultAcknowledged(Message, tag="aw.pool.ack"):
    """The Scheduler has durably recorded this result; the Pool may forget it."""

    job_id: Name
    attempt: Attempt


class StopJob(Message, tag="aw.pool.stop"):
    """Stop running this attempt (the job was cancelled or the attempt superseded)."""

    job_id: Name
    attempt: Attempt
    reason: str = ""


class DrainPool(Message, tag="aw.pool.drain"):
    """Stop taking work; let running attempts finish for ``grace`` seconds, then hand
    the rest back (outcome ``returned``). Answered with :class:`PoolDrainedReply`. A
    second DrainPool while one runs shortens the grace to its own (0: now)."""

    grace: Seconds


class PoolDrainedReply(Message, tag="aw.pool.drained"):
    """A drain ended: ``finished`` attempts ended within the grace, ``returned`` were
    handed back; ``undelivered`` results stay in the outbox for the next start."""

    finished: int
    returned: int
    undelivered: int


# --- a Pool and its workers -------------------------------------------------------------


class ExecuteJob(Message, tag="aw.worker.execute"):
    """Run one attempt; answered with :class:`WorkFinished` when it ends."""

    job: JobSpec


class WorkFinished(Message, tag="aw.worker.finished"):
    """An attempt ended. ``overrunning``: its work ignored the stop and still runs in
    the worker's thread, so the worker stays busy until it says :class:`WorkerFreed`."""

    result: WorkResult
    overrunning: bool = False


class WorkerFreed(Message, tag="aw.worker.freed"):
    """The thread of an overrunning attempt returned: the worker can take work again."""

    worker: str
    job_id: str
    attempt: int
