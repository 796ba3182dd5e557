"""The Scheduler's commit loop: effects gathered into batches, stored, then carried out.

A mixin of :class:`~actorwork.scheduler.actor.Scheduler`, which holds the fields it
works on (declared here, set in the Scheduler's ``__init__``). Each message's effects
join the pending batch (:meth:`CommitLoop._apply`); one task commits the batch to the
store while the next one fills (a group commit), publishes its events and calls its
middleware hooks once it is durable, and only then sends its dispatches,
acknowledgements and replies. A commit that cannot succeed makes the Scheduler step
down; a store taken over by another Scheduler deposes it.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any, assert_never

import anyio

from actorwork._log import get_logger
from actorwork.errors import ActorworkError, LeadershipLost, StoreError
from actorwork.events import Event, PoolLeft
from actorwork.messages import (
    JobKey,
    JobReply,
    JobView,
    Message,
    ResultAcknowledged,
    ResultsAcknowledged,
    RunJob,
    RunJobs,
)
from actorwork.middleware import MiddlewareChain
from actorwork.runtime import Actor, ActorRef, Reply
from actorwork.scheduler.cron import Cron
from actorwork.scheduler.state import (
    DropSchedule,
    Effect,
    Finished,
    Forget,
    Now,
    Persist,
    Record,
    SaveSchedule,
    SchedulerState,
    Send,
    SetFence,
    SetPaused,
)
from actorwork.scheduler.state import Reply as ReplyEffect
from actorwork.scheduler.subscribers import Subscribers, events_of
from actorwork.scheduler.waiters import Waiters
from actorwork.stores import JobStore

__all__ = ["CommitLoop", "Pending", "log"]

#: The Scheduler shell's logger, for all of its modules: named after its actor module,
#: where an application that tunes the Scheduler's logging looks for it.
log = get_logger("actorwork.scheduler.actor")

#: Effects bound to where their reply goes: the handle of the ask that made them.
Pending = tuple[list[Effect], Reply | None]

_RECENT = 10_000


class CommitLoop(Actor):
    """The group commit of a Scheduler and what follows it; see the module docstring."""

    # Set by Scheduler.__init__, where each is described.
    store: JobStore
    state: SchedulerState
    clock: Callable[[], Now]
    leader_lease: float
    cron: Cron
    deposed: anyio.Event
    deposed_reason: str
    pools: dict[str, ActorRef]
    subscribers: Subscribers
    middleware: MiddlewareChain
    _cron_now: bool
    _pending: list[Pending]
    _wake: anyio.Event
    _waiters: Waiters
    _recent: OrderedDict[str, JobView]
    _unpublished: list[Event]
    _hooks: list[tuple[Callable[[Any], None], Any]]
    _finished_counts: Counter[tuple[str, str, str]]
    _commits: int
    _commit_seconds: float
    _commit_last: float

    def _apply(self, effects: list[Effect], handle: Reply | None) -> None:
        if not effects:
            return
        self._pending.append((effects, handle))
        self._wake.set()
        if self.subscribers:
            self._unpublished += events_of(effects)
        if self.middleware.observes:
            self._hooks += _hooks_of(self.middleware, effects)

    async def _flush_forever(self) -> None:
        batch: list[Pending] = []
        try:
            while True:
                await self._wake.wait()
                self._wake = anyio.Event()
                while self._pending:
                    batch, self._pending = self._pending, []
                    events, self._unpublished = self._unpublished, []
                    hooks, self._hooks = self._hooks, []
                    await self._commit([effect for effects, _ in batch for effect in effects])
                    if events:
                        self.subscribers.publish(events)
                    for hook, argument in hooks:
                        hook(argument)
                    await self._carry_out(batch)
                    batch = []
        except LeadershipLost as exc:
            self._depose(str(exc))
        except Exception as exc:  # noqa: BLE001 - whatever broke the commits, step down
            reason = f"the job store could not commit: {type(exc).__name__}: {exc}"
            await self._step_down(reason, batch, exc)

    def _depose(self, reason: str) -> None:
        """Another Scheduler leads the store: stop writing and sending for good."""
        if not self.deposed.is_set():
            log.error("scheduler_deposed", store=self.store.path, reason=reason)
            self.deposed_reason = reason
            self.deposed.set()

    async def _commit(self, effects: list[Effect]) -> None:
        """Commit until it succeeds: nothing goes out that is not stored.

        A store error is retried with backoff for as long as the leader lease (a full
        disk may free up); past that it, like any other error, is raised to step down.
        """
        delay = 0.05
        give_up = time.monotonic() + self.leader_lease
        while True:
            started = time.perf_counter()
            try:
                await self.store.apply(effects)
            except StoreError as exc:
                if isinstance(exc, LeadershipLost) or time.monotonic() >= give_up:
                    raise
                log.error("store_commit_failed", error=str(exc), retry_in=delay)
                await anyio.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                self._commit_last = time.perf_counter() - started
                self._commits += 1
                self._commit_seconds += self._commit_last
                self.state.readings.commits.observe(self._commit_last)
                return

    async def _step_down(
        self, reason: str, batch: list[Pending], error: Exception | None = None
    ) -> None:
        """The commits failed for good, or the lease could not be renewed in time: fail
        what waited, release the store, stop.

        Nothing of the failed batch was stored, so nothing of it was promised: its asks
        fail here, and the state a successor loads from the store never saw it.
        """
        log.error("scheduler_stepped_down", store=self.store.path, reason=reason, exc_info=error)
        self.deposed_reason = reason
        self.deposed.set()  # no more renewals, writes or sends; receive refuses
        failure = StoreError(f"the Scheduler stepped down: {reason}")
        pending, self._pending = [*batch, *self._pending], []
        for _effects, handle in pending:
            if handle is not None:
                handle.fail(failure)
        for handle in self._waiters.clear():
            handle.fail(failure)
        with anyio.CancelScope(shield=True):
            try:
                await self.store.release()
            except Exception as exc:  # noqa: BLE001 - the lease then lapses on its own
                log.warning("leader_lease_not_released", error=repr(exc))
        await self.system.stop(self.ref)

    async def _carry_out(self, batch: list[Pending]) -> None:
        # Dispatches and acknowledgements to one pool leave as one message each kind.
        runs: dict[str, list[RunJob]] = {}
        acks: dict[str, list[JobKey]] = {}
        for effects, handle in batch:
            for effect in effects:
                match effect:
                    case (
                        Persist()
                        | Record()
                        | SaveSchedule()
                        | DropSchedule()
                        | SetFence()
                        | SetPaused()
                    ):
                        pass  # the commit did these; the commonest effects, tested first
                    case Send(pool=pool, message=RunJob() as run):
                        runs.setdefault(pool, []).append(run)
                    case Send(
                        pool=pool, message=ResultAcknowledged(job_id=job_id, attempt=attempt)
                    ):
                        acks.setdefault(pool, []).append(JobKey(job_id, attempt))
                    case Send(pool=pool, message=message):
                        await self._send(pool, message)
                    case ReplyEffect(message=message):
                        if handle is not None:
                            handle.resolve(message)
                    case Finished(view=view):
                        self._finished_counts[view.work, view.queue, view.status] += 1
                        self._recent[view.id] = view
                        if len(self._recent) > _RECENT:
                            self._recent.popitem(last=False)
                        if self.cron.finished(view.id):
                            self._cron_now = True  # a firing waited for this job to end
                        for waiter in self._waiters.pop(view.id):
                            waiter.resolve(JobReply(view))
                        log.debug(
                            "job_finished",
                            job_id=view.id,
                            work=view.work,
                            status=view.status,
                            attempt=view.attempt,
                            error=view.error or None,
                        )
                    case Forget(job_id=job_id):
                        self._recent.pop(job_id, None)
                    case _:
                        assert_never(effect)
        for pool, keys in acks.items():
            await self._send(pool, ResultsAcknowledged(keys))
        for pool, dispatched in runs.items():
            specs = [run.job for run in dispatched]
            await self._send(pool, RunJobs(specs, dispatched[0].lease))

    async def _send(self, pool: str, message: Message) -> None:
        ref = self.pools.get(pool)
        try:
            if ref is not None:
                await ref.tell(message)
        except ActorworkError as exc:
            ref = None
            log.warning("pool_unreachable", pool=pool, error=str(exc))
        if ref is None:
            self.state.pool_lost(pool)
            if self.subscribers:
                self.subscribers.publish([PoolLeft(pool=pool, reason="unreachable")])
            if isinstance(message, RunJobs):
                now = self.clock()
                for spec in message.jobs:
                    key = JobKey(spec.id, spec.attempt)
                    self._apply(self.state.dispatch_failed(key, now), None)


def _hooks_of(
    chain: MiddlewareChain, effects: list[Effect]
) -> list[tuple[Callable[[Any], None], Any]]:
    """The middleware calls a batch of effects makes: a dispatch hook per job sent, a
    commit hook per job finished."""
    hooks: list[tuple[Callable[[Any], None], Any]] = []
    for effect in effects:
        match effect:
            case Send(message=RunJob(job=spec)):
                hooks.append((chain.dispatched, spec))
            case Finished(view=view):
                hooks.append((chain.committed, view))
            case _:
                pass
    return hooks
