"""A subscription to the Scheduler's events, as :meth:`Client.events` hands it out.

:class:`EventStream` is an async iterator of :mod:`actorwork.events`. A local actor of
the client's system receives the Scheduler's :class:`~actorwork.events.EventBatch` es
and holds at most ``buffer`` events for the reader; past that it drops them and the
reader gets one :class:`~actorwork.events.EventsLost` saying how many.

Given several Scheduler addresses, the client follows the leader, and so does a
stream: when the link to the leader is lost, the stream finds the one that leads now
(as every ask does, within the client's ``connect_timeout``), subscribes there with the
same filter, and its reader gets an EventsLost before the new leader's events. The
new subscription is in place before that marker is read, so a reader that lists the
jobs again on EventsLost misses nothing after its listing. With one address the stream
ends instead (ActorStopped) when the Scheduler stops or its link breaks.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any, Self

import anyio
import anyio.abc

from actorwork._log import get_logger
from actorwork.errors import ActorStopped, ActorworkError, NoLeader
from actorwork.events import (
    Event,
    EventBatch,
    EventsLost,
    Subscribe,
    SubscribedReply,
    Unsubscribe,
)
from actorwork.messages import NotLeaderReply, Terminated
from actorwork.runtime import Actor, ActorRef

if TYPE_CHECKING:
    from actorwork.client import Client

__all__ = ["EventStream"]

log = get_logger(__name__)


class EventStream(anyio.abc.AsyncResource):
    """A subscription to the Scheduler's events; see :meth:`Client.events`.

    It subscribes when entered, or at the first ``__anext__``; it ends (StopAsyncIteration)
    when closed. Following several Schedulers, it subscribes again at the next leader when
    its link breaks (yielding an EventsLost first), and raises ActorStopped only when no
    leader is found within the client's ``connect_timeout``; with one Scheduler it raises
    ActorStopped when that Scheduler stops or its link breaks.
    """

    def __init__(self, client: Client, filter: Any, buffer: int) -> None:
        self.client = client
        self.filter = filter
        self.buffer = buffer
        #: The name of the subscription at the Scheduler (a new one after a failover).
        self.subscription = _new_name()
        #: The last event number the Scheduler published before this subscribed (the
        #: Scheduler's own count: after a failover, the new leader's).
        self.start_seq: int | None = None
        self._actor: _EventSubscriber | None = None
        self._ref: ActorRef | None = None
        self._closed = False

    async def __aenter__(self) -> Self:
        await self._open()
        return self

    async def _open(self) -> _EventSubscriber:
        if self._closed:
            raise RuntimeError(f"event stream {self.subscription!r} is closed")
        if self._actor is None:
            await self._subscribe(await self.client.scheduler_ref(), lost=0)
            assert self._actor is not None
        return self._actor

    async def _subscribe(self, scheduler: ActorRef, *, lost: int) -> None:
        """Subscribe at ``scheduler`` through a new local actor; ``lost`` events, if
        any, are told to the reader before the first new one."""
        message = Subscribe(self.subscription, self.filter, self.buffer)
        actor = _EventSubscriber(scheduler, message, self.buffer)
        actor.lost = lost
        self._ref = await self.client.system.spawn(actor, name=self.subscription)
        self._actor = actor
        self.start_seq = actor.start_seq

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        actor = await self._open()
        while True:
            if self._closed:
                raise StopAsyncIteration
            event = actor.next_event()
            if event is not None:
                return event
            if actor.ended is not None:
                if not self.client.follows_leader:
                    raise ActorStopped(f"the event stream ended: {actor.ended}")
                actor = await self._follow(actor)
                continue
            actor.wake = anyio.Event()
            await actor.wake.wait()

    async def _follow(self, ended: _EventSubscriber) -> _EventSubscriber:
        """Subscribe again at the Scheduler that leads now, after ``ended`` lost its own.

        What the old leader published and this never got is unknown: the EventsLost the
        reader gets next counts one more than the events known to be dropped, so a reader
        that resyncs on a positive count does. Raises ActorStopped when no leader takes
        the subscription within the client's ``connect_timeout``.
        """
        log.info("events_leader_lost", subscription=self.subscription, reason=ended.ended)
        await self._stop_actor()
        self.subscription = _new_name()
        deadline = time.monotonic() + self.client.connect_timeout
        while True:
            try:
                scheduler = await self.client.scheduler_ref(again=True)
                await self._subscribe(scheduler, lost=ended.lost + 1)
            except ActorworkError as exc:
                await self._stop_actor()
                if time.monotonic() >= deadline:
                    raise ActorStopped(
                        f"the event stream ended: {ended.ended}; no Scheduler took it "
                        f"again within connect_timeout={self.client.connect_timeout!r} "
                        f"({exc})"
                    ) from exc
                log.info("events_resubscribe_failed", error=str(exc))
                await anyio.sleep(0.1)  # a leader is being chosen: look again soon
                continue
            assert self._actor is not None
            if self._closed:  # closed by another task meanwhile: nobody unsubscribes this
                await self._stop_actor()
                raise StopAsyncIteration
            log.info("events_resubscribed", subscription=self.subscription)
            return self._actor

    async def _stop_actor(self) -> None:
        """Stop the local subscriber actor, if one runs."""
        ref, self._ref, self._actor = self._ref, None, None
        if ref is not None:
            with anyio.CancelScope(shield=True):
                await self.client.system.stop(ref)

    async def aclose(self) -> None:
        """Unsubscribe; idempotent."""
        if self._closed:
            return
        self._closed = True
        actor = self._actor
        if actor is None:
            return
        actor.wake.set()
        with anyio.CancelScope(shield=True):
            try:
                await actor.scheduler.tell(Unsubscribe(self.subscription))
            except ActorworkError:
                pass  # the Scheduler drops it when this subscriber stops, or is gone
            await self._stop_actor()


def _new_name() -> str:
    return f"events-{uuid.uuid4().hex}"


class _EventSubscriber(Actor):
    """Receives a subscription's batches and holds at most ``buffer`` events for its reader."""

    def __init__(self, scheduler: ActorRef, subscribe: Subscribe, buffer: int) -> None:
        self.scheduler = scheduler
        self.subscribe = subscribe
        self.buffer = buffer
        self.events: deque[Event] = deque()
        self.lost = 0
        self.wake = anyio.Event()
        self.start_seq = 0
        #: Why the stream ended (the Scheduler stopped or became unreachable), else None.
        self.ended: str | None = None

    async def on_start(self) -> None:
        reply = await self.scheduler.ask(self.subscribe)  # sent from this actor: its sender
        if isinstance(reply, NotLeaderReply):  # it stood down since it was found leading
            raise NoLeader(f"the Scheduler no longer leads (leader: {reply.leader or 'unknown'})")
        assert isinstance(reply, SubscribedReply), reply
        self.start_seq = reply.seq
        self.system.watch(self.scheduler, self.ref)

    async def receive(self, message: EventBatch | Terminated) -> None:
        match message:
            case EventBatch(events=events):
                for event in events:
                    if type(event) is EventsLost:  # lost at the Scheduler: told as one count
                        self.lost += event.count
                    elif len(self.events) >= self.buffer:
                        self.lost += 1
                    else:
                        self.events.append(event)
            case Terminated(name=name, reason=reason):
                if name == self.scheduler.name:
                    self.ended = f"the Scheduler {name!r} stopped or is unreachable ({reason})"
        self.wake.set()

    def next_event(self) -> Event | None:
        if self.lost:
            lost, self.lost = self.lost, 0
            return EventsLost(time=time.time(), count=lost)
        return self.events.popleft() if self.events else None
