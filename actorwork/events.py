"""Every change in the job system as a typed event, and the messages that subscribe to them.

A Scheduler numbers the events it publishes (``seq``, increasing per Scheduler) and
stamps them with the wall-clock ``time``; each carries the job fields a filter needs
(``job_id``, ``work``, ``queue``, ``status``; empty for events about no job). Events
are tagged, frozen msgspec Structs: ``msgspec.to_builtins(event)`` is a JSON-able dict
whose ``type`` names the event (``"job.succeeded"``, ``"pool.joined"``...).

Subscribing, over any transport::

    Subscriber --Subscribe(filter, buffer)--> Scheduler
    Subscriber <--EventBatch([...])---------- Scheduler     (as events happen)
    Subscriber --Unsubscribe(id)------------> Scheduler     (or its link closes)

The Scheduler never waits for a subscriber: each has a buffer of ``buffer`` events;
past that, events are dropped and counted, and the next batch starts with
:class:`EventsLost` saying how many. A subscriber that lost events can resync from a
snapshot (list the jobs again). Most users call
:meth:`actorwork.client.Client.events` instead of sending these messages.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, get_args

import msgspec
from msgspec import Meta

from actorwork.messages import (
    MAX_ITEMS,
    MAX_KEY,
    MAX_NAME,
    Attempt,
    Count,
    Fraction,
    LogLine,
    Message,
    Name,
    Timestamp,
)

__all__ = [
    "EVENT_KINDS",
    "ArtifactAdded",
    "Event",
    "EventBatch",
    "EventFilter",
    "EventsLost",
    "JobCancelled",
    "JobDead",
    "JobDeleted",
    "JobDispatched",
    "JobFailed",
    "JobLogged",
    "JobProgress",
    "JobQueued",
    "JobRetrying",
    "JobScheduled",
    "JobStarted",
    "JobSubmitted",
    "JobSucceeded",
    "PoolJoined",
    "PoolLeft",
    "QueuePaused",
    "QueueResumed",
    "ScheduleFired",
    "Subscribe",
    "Unsubscribe",
    "WorkerBusy",
    "WorkerIdle",
]

#: A Scheduler's event number: it only grows, and never overflows a 64-bit integer.
Seq = Annotated[int, Meta(ge=0, le=2**62)]


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", gc=False):
    """Fields every event has; ``seq`` and ``time`` are set when the Scheduler publishes."""

    seq: Seq = 0
    time: Timestamp = 0.0
    job_id: Name = ""
    work: Name = ""
    queue: Name = ""
    status: Name = ""
    #: The workflow the job is a node of and its path there; "" for other jobs.
    workflow: Name = ""
    path: Annotated[str, Meta(max_length=MAX_KEY)] = ""


# --- jobs -------------------------------------------------------------------------------


class JobSubmitted(_Event, frozen=True, tag="job.submitted"):
    """A job was stored (``status`` queued, or scheduled when it has a due time)."""

    priority: int = 0
    due: Timestamp | None = None


class JobScheduled(_Event, frozen=True, tag="job.scheduled"):
    """A job waits for its due time."""

    due: Timestamp | None = None


class JobQueued(_Event, frozen=True, tag="job.queued"):
    """A job is ready again: due, retried by request, handed back or undeliverable."""


class JobDispatched(_Event, frozen=True, tag="job.dispatched"):
    attempt: Attempt = 0
    pool: Name = ""


class JobStarted(_Event, frozen=True, tag="job.started"):
    """A worker began the attempt; ``started`` is when, by the worker's clock."""

    attempt: Attempt = 0
    pool: Name = ""
    worker: Name = ""
    started: Timestamp = 0.0


class JobProgress(_Event, frozen=True, tag="job.progress"):
    attempt: Attempt = 0
    fraction: Fraction | None = None
    message: str = ""


class JobLogged(_Event, frozen=True, tag="job.log"):
    """Lines a running attempt wrote, in order, a batch at a time."""

    attempt: Attempt = 0
    lines: Annotated[list[LogLine], Meta(max_length=MAX_ITEMS)] = []


class ArtifactAdded(_Event, frozen=True, tag="job.artifact"):
    attempt: Attempt = 0
    name: Annotated[str, Meta(max_length=1024)] = ""


class JobSucceeded(_Event, frozen=True, tag="job.succeeded"):
    attempt: Attempt = 0


class JobFailed(_Event, frozen=True, tag="job.failed"):
    attempt: Attempt = 0
    error: str = ""


class JobRetrying(_Event, frozen=True, tag="job.retrying"):
    attempt: Attempt = 0
    error: str = ""
    due: Timestamp | None = None


class JobDead(_Event, frozen=True, tag="job.dead"):
    attempt: Attempt = 0
    error: str = ""


class JobCancelled(_Event, frozen=True, tag="job.cancelled"):
    attempt: Attempt = 0
    reason: str = ""


class JobDeleted(_Event, frozen=True, tag="job.deleted"):
    pass


# --- pools, workers, queues, schedules --------------------------------------------------


class PoolJoined(_Event, frozen=True, tag="pool.joined"):
    pool: Name = ""
    queues: Annotated[list[Name], Meta(max_length=MAX_NAME)] = []
    free: Count = 0


class PoolLeft(_Event, frozen=True, tag="pool.left"):
    pool: Name = ""
    reason: str = ""


class WorkerBusy(_Event, frozen=True, tag="worker.busy"):
    pool: Name = ""
    worker: Name = ""


class WorkerIdle(_Event, frozen=True, tag="worker.idle"):
    pool: Name = ""
    worker: Name = ""


class QueuePaused(_Event, frozen=True, tag="queue.paused"):
    pass


class QueueResumed(_Event, frozen=True, tag="queue.resumed"):
    pass


class ScheduleFired(_Event, frozen=True, tag="schedule.fired"):
    """A cron schedule submitted ``job_id``."""

    schedule: Name = ""


class EventsLost(_Event, frozen=True, tag="events.lost"):
    """``count`` events were dropped because this subscriber fell behind its buffer, or
    its stream moved to a new leader after a failover (then how many the old leader
    published unseen is unknown, and ``count`` is one more than those known dropped)."""

    count: Count = 0


Event = (
    JobSubmitted
    | JobScheduled
    | JobQueued
    | JobDispatched
    | JobStarted
    | JobProgress
    | JobLogged
    | ArtifactAdded
    | JobSucceeded
    | JobFailed
    | JobRetrying
    | JobDead
    | JobCancelled
    | JobDeleted
    | PoolJoined
    | PoolLeft
    | WorkerBusy
    | WorkerIdle
    | QueuePaused
    | QueueResumed
    | ScheduleFired
    | EventsLost
)

#: Every event's ``type``, by class.
EVENT_KINDS: dict[type[_Event], str] = {
    cls: str(cls.__struct_config__.tag) for cls in get_args(Event)
}

_KNOWN = frozenset(EVENT_KINDS.values())


# --- subscribing ------------------------------------------------------------------------


class EventFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which events a subscriber wants: every given field must equal the event's.

    ``kinds`` are event types (``"job.log"``); None is every kind. :class:`EventsLost`
    always passes. Events about no job have empty job fields, so a job filter leaves
    them out.
    """

    job_id: Name | None = None
    work: Name | None = None
    queue: Name | None = None
    status: Name | None = None
    kinds: Annotated[list[Name], Meta(max_length=64)] | None = None
    #: Only the events of this workflow's nodes.
    workflow: Name | None = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.kinds or ()) - _KNOWN)
        if unknown:
            raise ValueError(
                f"unknown event kind {unknown[0]!r} (known: {', '.join(sorted(_KNOWN))})"
            )

    def matches(self, event: Event) -> bool:
        """Whether ``event`` passes this filter."""
        if type(event) is EventsLost:
            return True
        return (
            (self.job_id is None or event.job_id == self.job_id)
            and (self.work is None or event.work == self.work)
            and (self.queue is None or event.queue == self.queue)
            and (self.status is None or event.status == self.status)
            and (self.kinds is None or EVENT_KINDS[type(event)] in self.kinds)
            and (self.workflow is None or event.workflow == self.workflow)
        )


def make_filter(
    *,
    job_id: str | None = None,
    work: str | None = None,
    queue: str | None = None,
    status: str | None = None,
    kinds: Iterable[str] | None = None,
    workflow: str | None = None,
) -> EventFilter:
    """An :class:`EventFilter`; ValueError names an unknown kind."""
    return EventFilter(
        workflow=workflow,
        job_id=job_id,
        work=work,
        queue=queue,
        status=status,
        kinds=None if kinds is None else list(kinds),
    )


class Subscribe(Message, tag="aw.events.subscribe"):
    """Ask the Scheduler to tell the sender :class:`EventBatch` es of events that pass
    ``filter``, holding at most ``buffer`` for it; answered :class:`SubscribedReply`.

    ``subscription`` names it for :class:`Unsubscribe`. It ends with Unsubscribe, when
    the sender stops, or when the sender's link closes.
    """

    subscription: Name
    filter: EventFilter = EventFilter()
    buffer: Annotated[int, Meta(ge=1, le=1_000_000)] = 1000


class SubscribedReply(Message, tag="aw.events.subscribed"):
    """The subscription is active; ``seq`` is the last event number published before it."""

    subscription: str
    seq: int = 0


class Unsubscribe(Message, tag="aw.events.unsubscribe"):
    subscription: Name


class EventBatch(Message, tag="aw.events.batch"):
    """Events for one subscription, oldest first."""

    subscription: Name
    events: Annotated[list[Event], Meta(max_length=MAX_ITEMS)]
