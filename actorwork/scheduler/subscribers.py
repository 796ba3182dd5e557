"""The Scheduler's event subscribers: a bounded buffer each, and a sender that drains it.

:meth:`Subscribers.publish` numbers events and puts each in the buffer of every
subscriber whose filter it passes; it never waits. A subscriber whose buffer is full
loses the event, counted; the next batch it is sent starts with
:class:`~actorwork.events.EventsLost`. One task per subscriber (:meth:`Subscribers.deliver`)
tells it what its buffer holds as one :class:`~actorwork.events.EventBatch`, and waits for
its link alone: a slow subscriber slows only itself. A subscriber whose sends fail is
dropped.

Invariants: ``seq`` only grows; a subscription's buffer holds at most ``buffer`` events;
``lost`` counts the events dropped since its last batch went.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import anyio
import msgspec

from actorwork._log import get_logger
from actorwork.errors import ActorworkError
from actorwork.events import (
    ArtifactAdded,
    Event,
    EventBatch,
    EventFilter,
    EventsLost,
    JobCancelled,
    JobDead,
    JobDispatched,
    JobFailed,
    JobLogged,
    JobProgress,
    JobQueued,
    JobRetrying,
    JobScheduled,
    JobStarted,
    JobSubmitted,
    JobSucceeded,
    QueuePaused,
    QueueResumed,
    ScheduleFired,
    WorkerBusy,
    WorkerIdle,
)
from actorwork.messages import TERMINAL, JobOutput, JobView, SubmittedReply, WorkResult
from actorwork.runtime import ActorRef
from actorwork.scheduler.cron_state import parse_unique_key
from actorwork.scheduler.state import Effect, Finished, Job, Persist, Reply, SetPaused

__all__ = ["Subscribers", "Subscription", "events_of", "output_events", "result_events"]

log = get_logger(__name__)

_replace = msgspec.structs.replace


class Subscription:
    """One subscriber: its ref, its filter and its bounded buffer."""

    __slots__ = ("buffer", "closed", "filter", "id", "lost", "pending", "ref", "sent", "wake")

    def __init__(self, subscription: str, ref: ActorRef, filter: EventFilter, buffer: int) -> None:
        self.id = subscription
        self.ref = ref
        self.filter = filter
        self.buffer = buffer
        self.pending: deque[Event] = deque()
        self.lost = 0
        self.sent = 0
        self.closed = False
        self.wake = anyio.Event()

    def offer(self, event: Event) -> None:
        if len(self.pending) >= self.buffer:
            self.lost += 1
        else:
            self.pending.append(event)
        self.wake.set()

    def take(self) -> list[Event]:
        """What is buffered, after an EventsLost if events were dropped; empties it."""
        events: list[Event] = list(self.pending)
        self.pending.clear()
        if self.lost:
            events.insert(0, EventsLost(time=time.time(), count=self.lost))
            self.lost = 0
        return events


class Subscribers:
    """Every subscription of one Scheduler, by id; falsy when there is none."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._by_id: dict[str, Subscription] = {}
        self._clock = clock
        #: The number of the last event published.
        self.seq = 0

    def __bool__(self) -> bool:
        return bool(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def add(
        self, subscription: str, ref: ActorRef, filter: EventFilter, buffer: int
    ) -> Subscription:
        """A new subscription; one of the same id is replaced (and its sender ends)."""
        self.remove(subscription)
        sub = self._by_id[subscription] = Subscription(subscription, ref, filter, buffer)
        return sub

    def remove(self, subscription: str) -> None:
        sub = self._by_id.pop(subscription, None)
        if sub is not None:
            sub.closed = True
            sub.wake.set()

    def remove_ref(self, name: str) -> None:
        """Drop the subscriptions whose subscriber is the actor ``name`` (it stopped)."""
        for sub in [s for s in self._by_id.values() if s.ref.name == name]:
            self.remove(sub.id)

    def publish(self, events: Iterable[Event]) -> None:
        """Number ``events`` and offer each to the subscribers it passes; never waits."""
        subs = list(self._by_id.values())
        if not subs:
            return
        now = self._clock()
        seq = self.seq
        for made in events:
            seq += 1
            # Numbered for those who want it only: most events pass no filter (a page
            # that follows one job), and the copy was most of the cost of publishing.
            event = None
            for sub in subs:
                if sub.filter.matches(made):
                    if event is None:
                        event = _replace(made, seq=seq, time=made.time or now)
                    sub.offer(event)
        self.seq = seq

    async def deliver(self, sub: Subscription) -> None:
        """Send ``sub`` its events as they come, until it is removed or cannot be reached."""
        try:
            while True:
                await sub.wake.wait()
                sub.wake = anyio.Event()
                if sub.closed:  # removed while it waited
                    return
                events = sub.take()
                if events:
                    await sub.ref.tell(EventBatch(sub.id, events))
                    sub.sent += len(events)
        except ActorworkError as exc:
            log.info("subscriber_gone", subscription=sub.id, error=str(exc))
            if self._by_id.get(sub.id) is sub:
                self.remove(sub.id)


# --- events from the pure state's effects -----------------------------------------------


def events_of(effects: Iterable[Effect]) -> list[Event]:
    """The events a batch of effects makes, as the jobs are now (call it when they are made).

    A job persisted several times in one batch (submitted and dispatched at once) gives
    one event of its status now, after a :class:`JobSubmitted` if it was just created;
    a terminal job gives its terminal event from its :class:`Finished` view.
    """
    created: set[str] = set()
    persisted: dict[str, Job] = {}
    events: list[Event] = []
    for effect in effects:
        if type(effect) is Persist:
            persisted[effect.job.id] = effect.job
        elif type(effect) is Reply:
            reply = effect.message
            if type(reply) is SubmittedReply and reply.created:
                created.add(reply.job_id)
        elif type(effect) is Finished:
            events.append(_finished(effect.view))
        elif type(effect) is SetPaused:
            paused = QueuePaused if effect.paused else QueueResumed
            events.append(paused(queue=effect.queue))
    out: list[Event] = []
    for job in persisted.values():
        status = job.status
        if status in TERMINAL:
            continue
        if job.id in created:
            out.append(
                JobSubmitted(
                    job_id=job.id,
                    work=job.work,
                    queue=job.queue,
                    workflow=job.workflow,
                    path=job.path,
                    status="scheduled" if status == "scheduled" else "queued",
                    priority=job.priority,
                    due=job.due,
                )
            )
            fired = parse_unique_key(job.id)
            if fired is not None:
                out.append(
                    ScheduleFired(job_id=job.id, work=job.work, queue=job.queue, schedule=fired[0])
                )
            if status == "queued":
                continue
        out.append(_changed(job))
    return out + events


def _changed(job: Job) -> Event:
    fields = _job_fields(job)
    match job.status:
        case "running":
            return JobDispatched(**fields, attempt=job.attempt, pool=job.pool or "")
        case "scheduled":
            return JobScheduled(**fields, due=job.due)
        case "retrying":
            return JobRetrying(**fields, attempt=job.attempt, error=job.error, due=job.due)
        case _:
            return JobQueued(**fields)


def _finished(view: JobView) -> Event:
    fields = _job_fields(view)
    match view.status:
        case "succeeded":
            return JobSucceeded(**fields, attempt=view.attempt)
        case "failed":
            return JobFailed(**fields, attempt=view.attempt, error=view.error)
        case "dead":
            return JobDead(**fields, attempt=view.attempt, error=view.error)
        case _:
            return JobCancelled(**fields, attempt=view.attempt, reason=view.error)


def output_events(output: JobOutput, job: Job | None, started: bool) -> list[Event]:
    """The events of a running attempt's :class:`JobOutput`; ``job`` is it, if live.

    ``started`` is False when its start was already told (then it is not told again).
    """
    fields: dict[str, Any] = {"job_id": output.job_id, "attempt": output.attempt}
    if job is not None:
        fields |= _job_fields(job)
    events: list[Event] = []
    if started and output.started is not None:
        events.append(
            JobStarted(**fields, pool=output.pool, worker=output.worker, started=output.started)
        )
        events.append(_worker_busy(output.pool, output.worker, fields))
    if output.logs:
        events.append(JobLogged(**fields, lines=output.logs))
    if output.progressed:
        events.append(JobProgress(**fields, fraction=output.fraction, message=output.message))
    events.extend(ArtifactAdded(**fields, name=name) for name in output.artifacts)
    return events


def result_events(result: WorkResult, job: Job | None, started: bool) -> list[Event]:
    """The events of a result arriving: its start if not told yet, and its worker idle."""
    fields: dict[str, Any] = {"job_id": result.job_id}
    if job is not None:
        fields |= _job_fields(job)
    events: list[Event] = []
    if started and result.started:
        events.append(
            JobStarted(
                **fields,
                attempt=result.attempt,
                pool=result.pool,
                worker=result.worker,
                started=result.started,
            )
        )
        events.append(_worker_busy(result.pool, result.worker, fields))
    if result.worker:
        events.append(WorkerIdle(**fields, pool=result.pool, worker=result.worker))
    return events


def _job_fields(job: Job | JobView) -> dict[str, Any]:
    """The fields of an event about ``job``: who it is, where, and its workflow node."""
    fields: dict[str, Any] = {
        "job_id": job.id,
        "work": job.work,
        "queue": job.queue,
        "status": job.status,
    }
    if job.workflow:
        fields |= {"workflow": job.workflow, "path": job.path}
    return fields


def _worker_busy(pool: str, worker: str, fields: dict[str, Any]) -> Event:
    return WorkerBusy(
        **{k: v for k, v in fields.items() if k != "attempt"}, pool=pool, worker=worker
    )
