"""The Pool actor: a set of workers of one kind that asks the Scheduler for work.

Pull, not push: the Pool tells the Scheduler how many jobs it can take
(:class:`PoolReady`, then :class:`RequestWork` as workers come free) and never
holds more than that. Every result goes to the on-disk :class:`Outbox` before it is
reported, and leaves it only when the Scheduler acknowledges it. While the
Scheduler is unreachable the Pool finishes the work it has, keeps the results, and
reconnects with backoff; on reconnecting (or after a restart of the Pool itself)
it reports everything still in the outbox. The Scheduler dedupes.

Graceful stop (:class:`DrainPool`): the Pool asks for no more work (its credit goes
to zero), hands back at once any job still sent to it, lets the running attempts
finish for a grace period, then stops their workers and reports each attempt still
running as ``returned`` (through the outbox, so exactly once); a worker's result
arriving after that is dropped. It then waits briefly for the acknowledgements.

The Pool tells the Scheduler which works it has (the names in its registry once its
modules are imported), so that during a rolling deploy it is sent only work it can
run, and an incarnation drawn when it starts, so that the Scheduler ends the attempts
of a previous life of this Pool at once when it comes back restarted. On connecting it
first reports the results its outbox holds (of this life or the previous one), then
says it is ready: the results of the previous life are committed before those attempts
are ended as lost.

Kinds: ``local`` workers run on the Pool's own loop (sync work in threads),
``thread`` workers run each work in a thread of its own, and ``process`` workers are
child processes over ``pipe://``: a crash kills only that child, and its attempt is
reported as ``lost`` at once (the pipe's end of file), never as a success. ``docker``
workers are the same in containers, over ``docker://`` (see
:mod:`actorwork.pool.containers`): a container that dies is a lost worker, replaced.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, assert_never

import anyio
import anyio.to_thread
import msgspec

from actorwork._log import get_logger
from actorwork.clock import Now, system_now
from actorwork.errors import ActorworkError, AskTimeout, MessageRejected, NoLeader
from actorwork.messages import (
    DrainPool,
    ExecuteJob,
    JobKey,
    JobOutput,
    JobProgressed,
    JobSpec,
    Ping,
    PoolDrainedReply,
    PoolHeartbeat,
    PoolReady,
    ReportResult,
    ReportResults,
    RequestWork,
    ResultAcknowledged,
    ResultsAcknowledged,
    RunJob,
    RunJobs,
    StopJob,
    Terminated,
    WorkerFreed,
    WorkFinished,
    WorkResult,
)
from actorwork.output import StartedAlarm
from actorwork.pool.outbox import Outbox
from actorwork.pool.state import Attempt, PoolState
from actorwork.runtime import Actor, ActorRef, RemoteRef, Reply
from actorwork.runtime.follow import find_leader, resolve_addresses, split_addresses
from actorwork.work import default_registry
from actorwork.worker import STOP_GRACE, Worker

if TYPE_CHECKING:
    from actorwork.docker.engine import ContainerOptions
    from actorwork.pool.containers import ContainerFleet, ContainerWorker
    from actorwork.runtime.child import ChildProcess

__all__ = ["Pool", "PoolKind"]

log = get_logger(__name__)

PoolKind = Literal["local", "thread", "process", "docker"]

#: Heartbeats after which a result reported and not acknowledged is reported again, and
#: after which a Scheduler that answered none of them is taken for gone.
_RESEND_AFTER = 3
#: Results per message when the outbox is replayed (keeps each frame well under the cap).
_RESEND_BATCH = 64
#: Seconds before looking for the leader again while Schedulers answer in standby.
_ELECTION_RETRY = 0.2

#: Seconds a process worker may overrun its job's timeout or a stop request before it
#: is killed: the worker's own grace, then a second for its result to arrive.
_TIMEOUT_GRACE = STOP_GRACE + 1.0

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(list[WorkResult])


@dataclass(eq=False)
class _Worker:
    """How to reach one worker; what it runs is in :class:`PoolState`."""

    name: str
    ref: ActorRef
    child: ChildProcess | ContainerWorker | None = None  # a process or container worker


class Pool(Actor):
    """Workers of one kind, fed by a Scheduler; see the module docstring.

    ``scheduler`` is the Scheduler's address (``inproc://``, ``unix://``, ``tcp://``),
    several of Schedulers sharing a store (a list, or one string separated by commas:
    the Pool follows the one that leads, see :mod:`actorwork.runtime.follow`), or a ref
    to it; ``scheduler_name`` its actor name there. ``outbox`` is the
    directory of unacknowledged results. ``heartbeat`` is how often the Pool
    confirms its running attempts (keep it well under the Scheduler's lease).
    ``containers`` says what a ``docker`` pool's containers are made of. ``clock``
    is where the Pool reads the time (the system's clocks unless a test injects one);
    every timing decision is made by :class:`PoolState` from that reading.
    ``environment`` is added to the environment of process and container workers
    (the Pool's configuration tables their works read: see
    :func:`actorwork.config.worker_environment`). ``middleware`` are
    ``"package.module:attribute"`` paths every worker loads for its run hooks, in its
    own process (:mod:`actorwork.middleware`).
    """

    def __init__(
        self,
        *,
        scheduler: str | Sequence[str] | ActorRef,
        outbox: str | Path,
        kind: PoolKind = "local",
        size: int = 1,
        queues: list[str] | tuple[str, ...] = ("default",),
        modules: list[str] | tuple[str, ...] = (),
        scheduler_name: str = "scheduler",
        heartbeat: float = 5.0,
        reconnect_max: float = 5.0,
        fsync: bool = True,
        containers: ContainerOptions | None = None,
        clock: Callable[[], Now] = system_now,
        environment: dict[str, str] | None = None,
        middleware: list[str] | tuple[str, ...] = (),
    ) -> None:
        if kind not in ("local", "thread", "process", "docker"):
            raise ValueError(
                f"pool kind must be 'local', 'thread', 'process' or 'docker', got {kind!r}"
            )
        if size < 1:
            raise ValueError(f"pool size must be at least 1, got {size!r}")
        if not queues:
            raise ValueError("a pool must serve at least one queue")
        self.scheduler = scheduler
        #: The Scheduler addresses tried in turn (none when given a ref).
        self.addresses = [] if isinstance(scheduler, ActorRef) else split_addresses(scheduler)
        self.scheduler_name = scheduler_name
        self.kind: PoolKind = kind
        self.size = size
        self.queues = list(queues)
        self.modules = list(modules)
        self.middleware = list(middleware)
        self.heartbeat = heartbeat
        self.reconnect_max = reconnect_max
        self.outbox = Outbox(outbox, fsync=fsync, exclusive=True)  # one outbox, one Pool
        self.environment = dict(environment or {})
        if containers is not None and self.environment:
            merged = {**self.environment, **containers.environment}
            containers = dataclasses.replace(containers, environment=merged)
        self.containers = containers
        self._fleet: ContainerFleet | None = None  # a docker pool's containers
        self._alarm: StartedAlarm | None = None  # start notices of its local workers
        self.workers: dict[str, _Worker] = {}
        self.clock = clock
        # Named in on_start, once the actor has its name.
        self.state = PoolState(
            name="", heartbeat=heartbeat, resend_after=_RESEND_AFTER, timeout_grace=_TIMEOUT_GRACE
        )
        self._batches = itertools.count()
        self._run_id = secrets.token_hex(4)
        #: Drawn once per start: a PoolReady with another one is a restarted Pool.
        self.incarnation = secrets.token_hex(8)
        #: The works last told to the Scheduler; None until known.
        self._works: list[str] | None = None
        self._link_to_scheduler: ActorRef | None = None
        self._lost = anyio.Event()
        self._to_persist: list[WorkResult] = []
        self._to_remove: list[str] = []
        self._persist_wake = anyio.Event()
        #: Workers come idle since the last RequestWork, sent by _return_credit_forever.
        self._freed = 0
        self._credit_wake = anyio.Event()
        self._started = False  # on_start is over: the workers are there to be offered
        self._drain_changed = anyio.Event()  # a slot came free or the deadline moved
        self._deadlines_changed = anyio.Event()  # an attempt with a timeout began
        self._writing = False  # a batch of results is being written to the outbox

    # --- lifecycle ------------------------------------------------------------------

    async def on_start(self) -> None:
        self.state.name = self.name
        try:
            default_registry.import_modules(self.modules)
        except ValueError as exc:  # e.g. modules only inside the workers' image
            log.warning("pool_works_unknown", pool=self.name, error=str(exc))
        else:
            self._works = default_registry.names()
        entries = await anyio.to_thread.run_sync(self.outbox.open)
        for entry, data in entries:
            try:
                results = _decoder.decode(data)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                log.error("outbox_entry_unreadable", pool=self.name, entry=entry, error=str(exc))
                continue
            self.state.hold(entry, results)
        # Connect first: results waiting in the outbox go out while the workers start
        # (process workers take a while), before the Scheduler presumes them lost.
        self.start_soon(self._persist_forever)
        self.start_soon(self._return_credit_forever)
        self.start_soon(self._connect_forever)
        self.start_soon(self._heartbeat_forever)
        if self.kind in ("process", "docker"):  # local and thread workers time out alone
            self.start_soon(self._stop_overdue_forever)
        if self.kind == "docker":
            await self._open_fleet()
        for index in range(self.size):
            await self._start_worker(index)
        # No work is asked for before now: no message is handled until on_start returns,
        # and a RunJob waiting that long unseen by heartbeats would count as lost.
        self._started = True
        self._freed = self.state.free  # a PoolReady sent so far said 0
        self._credit_wake.set()
        self.log.info(
            "pool_started",
            kind=self.kind,
            size=self.size,
            queues=self.queues,
            results_to_deliver=len(self.state.unacked),
        )

    @property
    def _offering(self) -> bool:
        return self._started and not self.draining

    @property
    def draining(self) -> bool:
        """True once a drain began: no more work is asked for or taken."""
        return self.state.draining

    async def on_stop(self) -> None:
        with anyio.CancelScope(shield=True):
            await self._persist_pending()
            for worker in self.workers.values():
                if worker.child is not None:
                    await worker.child.aclose()
                else:
                    await self.system.stop(worker.ref)
            if self._fleet is not None:
                await self._fleet.aclose()
            self.outbox.close()

    async def _open_fleet(self) -> None:
        from actorwork.docker.engine import ContainerOptions
        from actorwork.pool.containers import ContainerFleet

        self._fleet = ContainerFleet(self.system, self.name, self.containers or ContainerOptions())
        await self._fleet.open()
        self.start_soon(self._fleet.serve)

    async def _start_worker(self, index: int) -> None:
        name = f"{self.name}.worker-{index}"
        if self.kind == "local" or self.kind == "thread":  # noqa: PLR1714 - narrows the kind
            if self._alarm is None:
                self._alarm = StartedAlarm()
            worker = Worker(
                kind=self.kind,
                modules=self.modules,
                pool=self.name,
                middleware=self.middleware,
                alarm=self._alarm,
            )
            self.workers[name] = _Worker(name, await self.system.spawn(worker, name=name))
        else:
            child: ChildProcess | ContainerWorker
            if self._fleet is not None:
                child = await self._fleet.start(name)
            else:
                child = await self.system.spawn_child(name, env=self.environment)
            remote: ActorRef = await child.spawn(
                "actorwork.worker:Worker",
                name=name,
                modules=self.modules,
                pool=self.name,
                middleware=self.middleware,
            )
            self.system.watch(remote, self.ref)
            self.workers[name] = _Worker(name, remote, child)
        self.state.add_worker(name)

    # --- messages -------------------------------------------------------------------

    async def receive(
        self,
        message: RunJob
        | WorkFinished
        | WorkerFreed
        | JobProgressed
        | JobOutput
        | ResultAcknowledged
        | ResultsAcknowledged
        | RunJobs
        | StopJob
        | Terminated
        | DrainPool,
    ) -> None:
        match message:
            case RunJob(job=spec):
                await self._run(spec)
            case RunJobs(jobs=specs):
                for spec in specs:
                    await self._run(spec)
            case DrainPool(grace=grace):
                if not self.state.drain(grace, self.clock()):
                    self._drain_changed.set()  # escalated: the deadline may be nearer
                    return
                self.start_soon(self._drain, grace, self.defer_reply())
            case WorkFinished(result=result, overrunning=False):
                self._finished(result)
            case WorkFinished(result=result):
                self._overran(result)
            case WorkerFreed(worker=worker, job_id=job_id, attempt=attempt):
                if self.state.freed(worker, JobKey(job_id, attempt)):
                    log.info("worker_freed", pool=self.name, worker=worker, job_id=job_id)
                    self._worker_idle()
            case JobProgressed() | JobOutput():
                await self._tell_scheduler(message)
            case ResultAcknowledged(job_id=job_id, attempt=attempt):
                self._acknowledged([JobKey(job_id, attempt)])
            case ResultsAcknowledged(keys=keys):
                self._acknowledged(keys)
                if self.draining:
                    self._drain_changed.set()
            case StopJob(job_id=job_id, attempt=attempt, reason=reason):
                running = self.state.running.get(JobKey(job_id, attempt))
                if running is not None:
                    await self._tell_worker(running.worker, message)
                    # A superseded attempt ("not current") may still finish: its late
                    # result is fenced (F9, F10); a cancelled one is made to stop.
                    child = self.workers[running.worker].child
                    if reason == "cancelled" and child is not None:
                        self.start_soon(self._enforce_stop, running)
            case Terminated(name=name):
                await self._terminated(name, message.reason)
            case _:
                assert_never(message)

    def _acknowledged(self, keys: list[JobKey]) -> None:
        for key in keys:
            released = self.state.acknowledge(key)
            if released is not None:
                self._to_remove.append(released)
                self._persist_wake.set()

    async def _run(self, spec: JobSpec) -> None:
        decision = self.state.assign(spec, self.clock())
        if decision is None:
            return  # a duplicate dispatch: one execution per attempt
        if isinstance(decision, WorkResult):
            log.warning("pool_returns_job", pool=self.name, job_id=spec.id, draining=self.draining)
            await self._tell_scheduler(ReportResult(decision))
            return
        if spec.timeout is not None:
            self._deadlines_changed.set()
        await self._tell_worker(decision.worker, ExecuteJob(spec))

    async def _tell_worker(self, name: str, message: ExecuteJob | StopJob) -> None:
        try:
            await self.workers[name].ref.tell(message)
        except ActorworkError as exc:
            if isinstance(message, ExecuteJob):
                self._lose(name, f"worker {name!r} unreachable: {exc}")

    def _finished(self, result: WorkResult) -> None:
        if self.state.finished(result) is None:
            return  # already reported lost or returned (a worker that answered after)
        self._persist(result)
        self._worker_idle()

    def _overran(self, result: WorkResult) -> None:
        """An attempt ended while its work still runs in its worker's thread: the worker
        stays busy, so no work is asked for it; a process or container is killed."""
        if self.state.overran(result) is not None:
            self._persist(result)
        worker = self.workers.get(result.worker)
        log.warning("worker_overran", pool=self.name, worker=result.worker, job_id=result.job_id)
        if worker is not None and worker.child is not None:
            worker.child.kill()  # replaced when its end is noticed (Terminated)

    def _worker_idle(self) -> None:
        """Ask for another job at once: a worker is free before its result is on disk."""
        if not self.draining:
            self._freed += 1
            self._credit_wake.set()

    async def _return_credit_forever(self) -> None:
        while True:
            await self._credit_wake.wait()
            self._credit_wake = anyio.Event()
            freed, self._freed = self._freed, 0
            if freed and self._link_to_scheduler is not None:
                await self._tell_scheduler(RequestWork(self.name, freed))

    def _lose(self, worker: str, error: str) -> None:
        lost = self.state.lose(worker, error, self.clock())
        if lost is not None:
            log.warning(
                "worker_lost", pool=self.name, worker=worker, job_id=lost.job_id, error=error
            )
            self._persist(lost)

    def _persist(self, result: WorkResult) -> None:
        self._to_persist.append(result)
        self._persist_wake.set()
        self._drain_changed.set()

    async def _terminated(self, name: str, reason: str) -> None:
        if name == self.scheduler_name:
            self._lost.set()
            return
        worker = self.workers.get(name)
        if worker is None or worker.child is None:
            return
        code = await _exit_code(worker.child)
        self._lose(name, await _lost_reason(worker.child, code))
        self.state.remove_worker(name)
        del self.workers[name]
        await worker.child.aclose()
        if self.draining:
            return  # a stopping pool does not replace its workers
        try:
            await self._start_worker(int(name.rsplit("-", 1)[1]))
        except RuntimeError as exc:  # the system is closing: no replacement
            log.debug("worker_not_replaced", pool=self.name, reason=str(exc))
            return
        except ActorworkError as exc:  # the engine failed a new container
            log.error("worker_not_replaced", pool=self.name, reason=str(exc))
            return
        self._worker_idle()

    async def _stop_overdue_forever(self) -> None:
        """Kill a process or container worker whose attempt overran its job's timeout by
        more than a grace (its death then reports the attempt ``lost``)."""
        while True:
            now = self.clock()
            for attempt in self.state.overdue(now):
                worker = self.workers.get(attempt.worker)
                if worker is not None and worker.child is not None:
                    log.warning(
                        "worker_killed_after_timeout", pool=self.name, job_id=attempt.spec.id
                    )
                    worker.child.kill()
            deadline = self.state.next_deadline()
            self._deadlines_changed = anyio.Event()
            with anyio.move_on_after(None if deadline is None else deadline - now.mono):
                await self._deadlines_changed.wait()

    async def _enforce_stop(self, attempt: Attempt) -> None:
        """Kill a process worker still running ``attempt`` a grace after its cancel."""
        await anyio.sleep(_TIMEOUT_GRACE)
        if self.state.running.get(attempt.key) is attempt:
            child = self.workers[attempt.worker].child
            if child is not None:
                log.warning("worker_killed_after_stop", pool=self.name, job_id=attempt.spec.id)
                child.kill()

    # --- graceful stop ------------------------------------------------------------------

    async def _drain(self, grace: float, reply: Reply | None) -> None:
        """Finish what runs within ``grace``, hand the rest back, wait for the acks."""
        running = len(self.state.running)
        log.info("pool_draining", pool=self.name, running=running, grace=grace)
        ref = self._link_to_scheduler
        if ref is not None:  # credit to zero: the Scheduler sends this pool nothing more
            try:
                await ref.tell(self._ready(free=0))
            except ActorworkError:
                self._lost.set()
        while self.state.running:
            left = self.state.drain_left(self.clock())
            if left <= 0:
                break
            self._drain_changed = anyio.Event()
            with anyio.move_on_after(left):
                await self._drain_changed.wait()
        returned = await self._hand_back()
        # The results (finished and returned) go out; wait a little for their acks.
        with anyio.move_on_after(max(5.0, self.heartbeat)):
            while self.state.unacked or self._to_persist or self._writing:
                self._drain_changed = anyio.Event()
                await self._drain_changed.wait()
        log.info(
            "pool_drained",
            pool=self.name,
            finished=running - returned,
            returned=returned,
            undelivered=len(self.state.unacked),
        )
        if reply is not None:
            undelivered = len(self.state.unacked)
            reply.resolve(PoolDrainedReply(running - returned, returned, undelivered))

    async def _hand_back(self) -> int:
        """Stop the attempts still running and report each as ``returned``, once."""
        ended = self.state.hand_back(self.clock())
        for attempt, returned in ended:
            # From now on the worker's own result for it is dropped.
            await self._tell_worker(
                attempt.worker, StopJob(attempt.spec.id, attempt.spec.attempt, "pool stopping")
            )
            self._to_persist.append(returned)
        if ended:
            self._persist_wake.set()
        return len(ended)

    # --- results --------------------------------------------------------------------

    async def _persist_forever(self) -> None:
        while True:
            await self._persist_wake.wait()
            self._persist_wake = anyio.Event()
            await self._persist_pending()

    async def _persist_pending(self) -> None:
        """Write finished results (one group write), then report them; drop acked ones."""
        while self._to_persist or self._to_remove:
            results, self._to_persist = self._to_persist, []
            removed, self._to_remove = self._to_remove, []
            # One entry per batch: one fsync however many results ended together.
            entry = f"{self._run_id}-{next(self._batches)}"
            items = [(entry, _encoder.encode(results))] if results else []
            self._writing = True
            try:
                await anyio.to_thread.run_sync(self._write, items, removed)
            except ActorworkError as exc:
                log.error("outbox_write_failed", pool=self.name, error=str(exc))
                self._to_persist[:0] = results
                self._to_remove[:0] = removed
                await anyio.sleep(1.0)
                continue
            finally:
                self._writing = False
                self._drain_changed.set()
            self.state.hold(entry, results, self.clock())
            if results:
                await self._tell_scheduler(ReportResults(results))

    def _write(self, items: list[tuple[str, bytes]], removed: list[str]) -> None:
        # Removals first: they free space, so a full disk does not hold up the
        # acknowledgements that would relieve it (removing twice is harmless).
        if removed:
            self.outbox.remove_many(removed)
        if items:
            self.outbox.put_many(items)

    # --- the Scheduler ----------------------------------------------------------------

    async def _tell_scheduler(
        self,
        message: ReportResult
        | ReportResults
        | RequestWork
        | JobProgressed
        | JobOutput
        | PoolHeartbeat,
    ) -> None:
        ref = self._link_to_scheduler
        if ref is None:
            return  # results stay in the outbox; credit is restated on reconnect
        try:
            await ref.tell(message)
        except ActorworkError as exc:
            if isinstance(exc, MessageRejected) and isinstance(message, JobOutput):
                # A Scheduler that predates live output: it still gets the result.
                log.debug("live_output_refused", pool=self.name, job_id=message.job_id)
                return
            log.warning("scheduler_unreachable", pool=self.name, error=str(exc))
            self._lost.set()

    def _ready(self, free: int) -> PoolReady:
        return PoolReady(
            self.name,
            self.queues,
            capacity=self.size,
            free=free,
            running=list(self.state.running),
            works=self._works,
            incarnation=self.incarnation,
        )

    async def _connect_forever(self) -> None:
        delay = 0.1
        while True:
            try:
                ref = await self._reach_scheduler()
                # The results held go first, on the same ordered link: a restarted Pool's
                # are committed before PoolReady ends its previous life's attempts.
                undelivered = self.state.to_deliver(self.clock())
                for start in range(0, len(undelivered), _RESEND_BATCH):
                    await ref.tell(ReportResults(undelivered[start : start + _RESEND_BATCH]))
                ready = self._ready(free=self.state.free if self._offering else 0)
                self._lost = anyio.Event()
                self._freed = 0  # PoolReady's free count already includes them
                self.state.linked(self.clock())  # before the heartbeats see the link
                self._link_to_scheduler = ref
                await ref.tell(ready)
            except (ActorworkError, OSError) as exc:
                self._link_to_scheduler = None
                electing = isinstance(exc, NoLeader) and exc.standbys
                # While standbys answer, the quick looks after the first are logged quietly.
                say = log.debug if electing and delay == _ELECTION_RETRY else log.info
                say("scheduler_unreachable", pool=self.name, error=str(exc), retry_in=delay)
                await anyio.sleep(delay * (0.5 + random.random() / 2))
                # While a standby is about to lead, look again soon.
                delay = _ELECTION_RETRY if electing else min(delay * 2, self.reconnect_max)
                continue
            delay = 0.1
            log.info("scheduler_connected", pool=self.name, results_to_deliver=len(undelivered))
            await self._lost.wait()
            self._link_to_scheduler = None
            log.warning("scheduler_lost", pool=self.name)

    async def _reach_scheduler(self) -> ActorRef:
        if isinstance(self.scheduler, ActorRef):
            return self.scheduler
        addresses = await resolve_addresses(self.addresses)
        if len(addresses) == 1:  # the one Scheduler: nobody to ask who leads
            ref = await self.system.remote(addresses[0], self.scheduler_name)
        else:
            ref = await find_leader(
                self.system, addresses, self.scheduler_name, timeout=self.state.patience
            )
        self.system.watch(ref, self.ref)
        return ref

    async def _heartbeat_forever(self) -> None:
        """Every ``heartbeat`` seconds, confirm the running attempts whose workers answer.

        Each heartbeat is an ask of its own, so a slow answer still counts when it
        comes. A connection that stays open while nothing comes through (a half-open
        TCP connection, a partition, a Scheduler that stopped answering) is noticed by
        its silence: the link is closed, and the Pool connects again.
        """
        while True:
            await anyio.sleep(self.heartbeat)
            ref = self._link_to_scheduler
            if ref is None:
                continue
            now = self.clock()
            if self.state.silent(now):
                await self._close_silent(ref, now)
                continue
            alive = await self._responsive()
            stuck = [key for key in self.state.running if key not in alive]
            overrunning = list(self.state.overrunning.values())
            beat = PoolHeartbeat(
                self.name,
                alive,
                works=self._learnt(),
                unresponsive=stuck,
                overrunning=overrunning,
                backlog=len(self.state.unacked) + len(self._to_persist),
            )
            self.start_soon(self._heartbeat, ref, beat)

    def _learnt(self) -> list[str] | None:
        """The works, if works were registered since the Scheduler was last told."""
        if self._works is None or self._works == (names := default_registry.names()):
            return None
        self._works = names
        return names

    async def _heartbeat(self, ref: ActorRef, beat: PoolHeartbeat) -> None:
        """Send one heartbeat; once the Scheduler takes it, report again the results it
        left unanswered (a report or its acknowledgement went missing on a live link).
        The Scheduler acknowledges a result it already has without storing it twice."""
        try:
            await ref.ask(beat, timeout=self.state.patience)
        except AskTimeout:
            return  # the silence is the heartbeat loop's to judge
        except ActorworkError as exc:
            if ref is self._link_to_scheduler:
                log.warning("scheduler_unreachable", pool=self.name, error=str(exc))
                self._lost.set()
            return
        if ref is not self._link_to_scheduler:
            return  # an answer on a link since replaced says nothing of the new one
        self.state.heartbeat_answered(self.clock())
        unanswered = self.state.unanswered(self.clock())
        if unanswered:
            log.info("results_reported_again", pool=self.name, count=len(unanswered))
        for start in range(0, len(unanswered), _RESEND_BATCH):
            await self._tell_scheduler(ReportResults(unanswered[start : start + _RESEND_BATCH]))

    async def _close_silent(self, ref: ActorRef, now: Now) -> None:
        """The Scheduler answered nothing for a while on an open link: close it."""
        log.warning(
            "scheduler_unresponsive", pool=self.name, silent_for=now.mono - self.state.answered
        )
        lost = self._lost  # this link's: a link made while closing this one stays
        if isinstance(ref, RemoteRef):
            await (await ref.link()).aclose("the scheduler stopped answering heartbeats")
        lost.set()

    async def _responsive(self) -> list[JobKey]:
        """The running attempts whose workers answer: a stopped process earns no lease."""
        alive: list[JobKey] = []

        async def probe(child: ChildProcess | ContainerWorker, attempt: Attempt) -> None:
            try:
                await child.ref("_system").ask(Ping(), timeout=self.heartbeat / 2)
            except ActorworkError:
                log.warning(
                    "worker_unresponsive",
                    pool=self.name,
                    worker=attempt.worker,
                    job_id=attempt.spec.id,
                )
                return
            alive.append(attempt.key)

        async with anyio.create_task_group() as tg:
            for attempt in list(self.state.running.values()):
                child = self.workers[attempt.worker].child
                if child is None:
                    alive.append(attempt.key)
                else:
                    tg.start_soon(probe, child, attempt)
        return alive


async def _exit_code(child: ChildProcess | ContainerWorker) -> int | None:
    with anyio.move_on_after(1.0):
        return await child.wait()
    return None


async def _lost_reason(child: ChildProcess | ContainerWorker, code: int | None) -> str:
    from actorwork.pool.containers import ContainerWorker

    if isinstance(child, ContainerWorker):
        return await child.exit_reason()  # with the engine's word on it (out of memory?)
    return f"worker process exited (code {code}) without a result"
