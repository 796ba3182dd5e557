"""The Worker: runs one attempt of one job at a time and reports how it went.

A Worker is an actor. Its Pool tells it :class:`ExecuteJob`; it runs the work in the
background (so it can still hear :class:`StopJob`), and tells the Pool
:class:`JobOutput` while the work runs (what it logs and prints, its progress and
artifacts, batched by :class:`LiveOutput`) and :class:`WorkFinished` with the
:class:`WorkResult` at the end. The Worker never retries: attempts are the
Scheduler's business.

Kinds: ``local`` runs async work on the Worker's own loop and sync work in a thread
of the default pool; ``thread`` runs every work in a thread of its own, async work on
an event loop in that thread, so a work that blocks its loop stalls nothing else. A
``process`` Pool runs a ``local`` Worker in a child process.

Stops are enforced (F27). A stop request (:class:`StopJob`) or the job's timeout first
asks the work to stop at its next check-in; ``grace`` seconds later async work is
cancelled, so its ``finally`` blocks run. Sync work cannot be cancelled: its attempt
ends then, and its thread is left to return, while the Worker stays busy (it says so
in :class:`WorkFinished` and takes no job) until it does, then tells the Pool
:class:`WorkerFreed`. A Pool therefore never counts a slot free whose thread still
runs; a ``process`` Pool kills such a worker and starts another. Work that blocks its
own event loop can be stopped only by killing its process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, TypeVar, assert_never

import anyio
import anyio.to_thread
import msgspec

from actorwork.capture import JobCapture, install
from actorwork.errors import ActorStopped, ActorworkError, PayloadError, WorkFailed, WorkNotFound
from actorwork.messages import (
    ExecuteJob,
    JobOutput,
    JobSpec,
    Outcome,
    StopJob,
    WorkerFreed,
    WorkFinished,
    WorkResult,
)
from actorwork.middleware import MiddlewareChain
from actorwork.middleware import load as load_middleware
from actorwork.output import OUTPUT_INTERVAL, OUTPUT_LINES, LiveOutput, StartedAlarm
from actorwork.runtime import Actor, ActorRef
from actorwork.work import Work, WorkContext, WorkRegistry, default_registry

__all__ = [
    "OUTPUT_INTERVAL",
    "OUTPUT_LINES",
    "STOP_GRACE",
    "LiveOutput",
    "StartedAlarm",
    "Worker",
    "WorkerKind",
    "run_attempt",
]

WorkerKind = Literal["local", "thread"]

#: Seconds a work has, past a stop request or its timeout, to stop by itself before
#: the stop is enforced (async work cancelled, sync work left to its thread).
STOP_GRACE = 1.0

_encoder = msgspec.msgpack.Encoder()
_T = TypeVar("_T")


async def run_attempt(
    spec: JobSpec,
    *,
    registry: WorkRegistry | None = None,
    kind: WorkerKind = "local",
    on_progress: Callable[[float | None, str], None] | None = None,
    on_context: Callable[[WorkContext], None] | None = None,
    on_overrun: Callable[[anyio.Event], None] | None = None,
    grace: float = STOP_GRACE,
    pool: str = "",
    worker: str = "",
    output: LiveOutput | None = None,
    middleware: MiddlewareChain | None = None,
) -> WorkResult:
    """Run one attempt of ``spec`` and describe how it ended; never raises for the work.

    An unknown work or a payload that fails validation ends the attempt as ``failed``
    (running it again cannot help). At the timeout the work is asked to stop, and
    made to ``grace`` seconds later (see the module docstring); the attempt ends as
    ``timeout`` either way. A work stopped on request (the context's
    :meth:`~WorkContext.request_stop`) ends ``cancelled`` when it had to be made to.
    ``on_context`` receives the attempt's context before the work starts (the Worker
    keeps it to pass on stop requests). ``on_overrun`` receives, when the attempt
    ends while its sync work still runs in its thread, an event set when it returns.
    ``output`` is told what the attempt writes, reports and adds as it does (it is
    closed when the attempt ends); ``middleware`` wraps the work with its run hooks.
    """
    if not grace >= 0:
        raise ValueError(f"stop grace must be 0 or more seconds, got {grace!r}")
    started = time.time()
    install()  # cheap when done: re-wraps sys.stdout if someone replaced it since
    capture = JobCapture(
        job_id=spec.id, work=spec.work, on_line=None if output is None else output.line
    )
    ctx = WorkContext(
        job_id=spec.id,
        attempt=spec.attempt,
        work=spec.work,
        queue=spec.queue,
        parents=spec.parents,
        log=capture.logger,
        on_progress=on_progress,
        context=spec.context,
        on_artifact=None if output is None else output.artifact,
    )
    if output is not None:
        output.started(started)
    if on_context is not None:
        on_context(ctx)
    outcome: Outcome = "succeeded"
    value: bytes | None = None
    error = trace = ""
    forced = False
    with capture:
        # No timer at all for the common case of no timeout: this is per job.
        timer = (
            asyncio.get_running_loop().call_later(spec.timeout, ctx.request_stop, _TIMED_OUT)
            if spec.timeout
            else None
        )
        try:
            item = (registry or default_registry).get(spec.work)
            payload = item.decode_payload(spec.payload)
            if middleware:
                returned = await middleware.run(
                    ctx,
                    lambda: _invoke(
                        item, ctx, payload, kind=kind, grace=grace, on_overrun=on_overrun
                    ),
                )
            else:
                returned = await _invoke(
                    item, ctx, payload, kind=kind, grace=grace, on_overrun=on_overrun
                )
        except (WorkNotFound, PayloadError, WorkFailed) as exc:
            outcome, error = "failed", _describe(exc)
            capture.logger.warning("work_failed", error=error)
        except _Stopped:
            forced = True
            capture.logger.error("work_stop_enforced", reason=ctx.stop_reason, grace=grace)
        except Exception as exc:  # noqa: BLE001 - any error of the work is its result
            outcome, error, trace = "error", _describe(exc), _format(exc)
            capture.logger.error("work_raised", error=error)
        else:
            try:
                value = _encoder.encode(returned)
            except (TypeError, msgspec.EncodeError, OverflowError) as exc:
                outcome, trace = "error", _format(exc)
                error = f"the return value of work {spec.work!r} cannot be encoded: {exc}"
                capture.logger.error("work_result_unencodable", error=error)
        finally:
            if timer is not None:
                timer.cancel()
            if output is not None:
                output.close()
        if ctx.stop_reason == _TIMED_OUT:
            capture.logger.error("work_timed_out", timeout=spec.timeout)
    outcome, error = _stopped(
        outcome, error, reason=ctx.stop_reason, forced=forced, timeout=spec.timeout, grace=grace
    )
    return WorkResult(
        job_id=spec.id,
        attempt=spec.attempt,
        outcome=outcome,
        value=value if outcome in ("succeeded", "cancelled") else None,
        error=error,
        traceback=trace,
        logs=tuple(capture.lines),
        progress=ctx.fraction,
        progress_message=ctx.progress_message,
        started=started,
        finished=time.time(),
        artifacts=tuple(ctx.artifacts),
        pool=pool,
        worker=worker,
    )


#: The stop reason the timeout gives.
_TIMED_OUT = "timed out"


def _stopped(
    outcome: Outcome,
    error: str,
    *,
    reason: str,
    forced: bool,
    timeout: float | None,
    grace: float,
) -> tuple[Outcome, str]:
    """How an attempt asked to stop for ``reason`` ended, given how its work did.

    A timed-out attempt is ``timeout`` whatever its work did after; a work made to stop
    (``forced``) is ``cancelled``; one that stopped by itself keeps its own outcome,
    except that a success after a cancel is ``cancelled``.
    """
    if reason == _TIMED_OUT:
        return "timeout", f"timed out after {timeout} s"
    if forced:
        return "cancelled", f"stop requested ({reason}) and enforced after {grace} s"
    if outcome == "succeeded" and reason == "cancelled":
        return "cancelled", error
    return outcome, error


class _Stopped(Exception):
    """The work did not stop within the grace after a stop request, and was made to."""


async def _enforced(ctx: WorkContext, grace: float, call: Callable[[], Awaitable[_T]]) -> _T:
    """Await ``call()`` on this loop; ``grace`` seconds after a stop is requested,
    cancel it and raise :class:`_Stopped` (unless the work still returned a value)."""
    task = asyncio.current_task()
    assert task is not None
    enforcement = _Enforcement(task, grace)
    ctx.when_stopped(functools.partial(_call_soon, enforcement.loop, enforcement.arm))
    try:
        return await call()
    except asyncio.CancelledError:
        if enforcement.uncancel():
            raise _Stopped from None
        raise
    finally:
        enforcement.end()


class _Enforcement:
    """The cancellation :func:`_enforced` makes a grace after a stop request, as
    :func:`asyncio.timeout` does it: one ``cancel`` of the task, matched by one
    ``uncancel``, so a cancellation from elsewhere (a stopping Pool) still propagates.

    Nothing is scheduled until a stop is requested: an attempt that is never asked to
    stop costs no timer and no cancel scope (this runs for every job).
    """

    __slots__ = ("_cancelling", "_ended", "_fired", "_timer", "grace", "loop", "task")

    def __init__(self, task: asyncio.Task[Any], grace: float) -> None:
        self.task = task
        self.grace = grace
        self.loop = task.get_loop()
        self._cancelling = task.cancelling()
        self._timer: asyncio.TimerHandle | None = None
        self._fired = False  # the task was cancelled by this enforcement
        self._ended = False

    def arm(self) -> None:
        """On the loop: cancel the task ``grace`` seconds from now, unless it ended."""
        if not self._ended and self._timer is None:
            self._timer = self.loop.call_later(self.grace, self._cancel)

    def _cancel(self) -> None:
        # Only ever runs while the task awaits inside _enforced: end() cancels the timer.
        self._fired = True
        self.task.cancel()

    def uncancel(self) -> bool:
        """After a CancelledError: whether this enforcement alone caused it."""
        if not self._fired:
            return False
        self._fired = False
        return self.task.uncancel() <= self._cancelling

    def end(self) -> None:
        """The call is over: nothing more is scheduled, and a cancel the work swallowed
        is taken back."""
        self._ended = True
        if self._timer is not None:
            self._timer.cancel()
        if self._fired:
            self._fired = False
            self.task.uncancel()


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Callable[[], object]) -> None:
    """Run ``callback`` on ``loop`` from any thread; nothing if the loop is closed."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback)


async def _invoke(
    item: Work,
    ctx: WorkContext,
    payload: Any,
    *,
    kind: WorkerKind,
    grace: float,
    on_overrun: Callable[[anyio.Event], None] | None,
) -> Any:
    args, kwargs = item.arguments(ctx, payload)
    if item.is_async and kind == "local":
        return await _enforced(ctx, grace, lambda: item.func(*args, **kwargs))
    if item.is_async:
        # Its own loop in the thread cancels it after the grace; the thread is given
        # as much again to return before it counts as overrunning.
        run: Callable[[], Any] = functools.partial(_run_loop, ctx, grace, item.func, args, kwargs)
        grace *= 2
    else:
        run = functools.partial(item.func, *args, **kwargs)
    limiter = anyio.CapacityLimiter(1) if kind == "thread" else None
    loop = asyncio.get_running_loop()
    returned = anyio.Event()

    def in_thread() -> Any:
        try:
            return run()
        finally:
            _call_soon(loop, returned.set)

    try:
        return await _enforced(
            ctx,
            grace,
            lambda: anyio.to_thread.run_sync(in_thread, limiter=limiter, abandon_on_cancel=True),
        )
    except _Stopped:
        if on_overrun is not None and not returned.is_set():
            on_overrun(returned)
        raise


def _run_loop(
    ctx: WorkContext,
    grace: float,
    func: Callable[..., Any],
    args: list[Any],
    kwargs: dict[str, Any],
) -> Any:
    return asyncio.run(_enforced(ctx, grace, lambda: func(*args, **kwargs)))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__qualname__}: {exc}"


def _format(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


class Worker(Actor):
    """Runs the jobs its Pool sends, one at a time; see the module docstring.

    ``modules`` are imported when the Worker starts (the works they define register
    themselves); a Worker in a child process needs them to know its works.
    """

    def __init__(
        self,
        *,
        kind: WorkerKind = "local",
        modules: list[str] | tuple[str, ...] = (),
        pool: str = "",
        registry: WorkRegistry | None = None,
        grace: float = STOP_GRACE,
        middleware: Sequence[object | str] = (),
        output_interval: float = OUTPUT_INTERVAL,
        alarm: StartedAlarm | None = None,
    ) -> None:
        if kind not in ("local", "thread"):
            raise ValueError(f"worker kind must be 'local' or 'thread', got {kind!r}")
        if not grace >= 0:
            raise ValueError(f"stop grace must be 0 or more seconds, got {grace!r}")
        self.kind: WorkerKind = kind
        self.modules = list(modules)
        self.pool = pool
        self.registry = registry or default_registry
        #: Seconds past a stop request or a timeout before the stop is enforced.
        self.grace = grace
        #: Middleware objects, or ``"pkg.mod:Thing"`` paths loaded when the Worker starts.
        self.middleware_spec = list(middleware)
        self.middleware = MiddlewareChain()
        self.output_interval = output_interval
        #: The job being run, from the moment its ExecuteJob is taken until its result
        #: is handed over or, when its work overran in its thread, until that thread
        #: returned; a second ExecuteJob meanwhile is refused.
        self._job: JobSpec | None = None
        #: The job taken but not yet started by the runner task, and whom to report to.
        self._queued: tuple[JobSpec, ActorRef] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._context: WorkContext | None = None
        #: Sends the start notices of attempts that run past ``output_interval``; its
        #: Pool's, shared by its workers of one interval, or made with the first job.
        self._alarm = alarm

    async def on_start(self) -> None:
        self.registry.import_modules(self.modules)
        paths = [item for item in self.middleware_spec if isinstance(item, str)]
        objects = [item for item in self.middleware_spec if not isinstance(item, str)]
        self.middleware = MiddlewareChain([*objects, *load_middleware(paths)])
        # One long-lived task runs every attempt: a task per job would cost more than a
        # no-op job itself.
        self.start_soon(self._run_jobs)

    async def receive(self, message: ExecuteJob | StopJob) -> None:
        match message:
            case ExecuteJob(job=spec):
                reporter = self.sender
                if reporter is None:
                    raise ValueError("ExecuteJob needs a sender to report to")
                busy = self._queued[0] if self._queued is not None else self._job
                if busy is not None:
                    raise RuntimeError(
                        f"worker {self.name!r} is running job {busy.id!r}; refusing job {spec.id!r}"
                    )
                self._queued = (spec, reporter)
                wake = self._wake
                if wake is not None and not wake.done():
                    wake.set_result(None)
            case StopJob(job_id=job_id, attempt=attempt, reason=reason):
                ctx = self._context
                if ctx is not None and (ctx.job_id, ctx.attempt) == (job_id, attempt):
                    ctx.request_stop(reason or "stopped")
            case _:
                assert_never(message)

    async def _run_jobs(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            queued = self._queued
            if queued is None:
                self._wake = loop.create_future()
                await self._wake
                continue
            spec, reporter = queued
            self._queued, self._job = None, spec
            try:
                await self._run(spec, reporter)
            except ActorStopped as exc:
                # The Pool stopped first: it handed the attempt back, or its lease covers it.
                self.log.info(
                    "worker_result_dropped", job_id=spec.id, attempt=spec.attempt, reason=str(exc)
                )
            except Exception:
                # The result could not be handed over (the Pool is gone): the Pool's
                # lease on the job covers it; this Worker goes on taking jobs.
                self.log.exception("worker_report_failed", job_id=spec.id, attempt=spec.attempt)

    def _live_output(self, spec: JobSpec, reporter: ActorRef) -> LiveOutput:
        async def tell(output: JobOutput) -> None:
            try:
                await reporter.tell(output)
            except ActorworkError:
                pass  # the Pool stopped or is gone: live output is a courtesy, the result
                # says all and goes by the path that handles a stopped Pool

        def send(output: JobOutput) -> None:
            self.start_soon(tell, output)

        if self._alarm is None:
            self._alarm = StartedAlarm()
        return LiveOutput(
            spec,
            send,
            pool=self.pool,
            worker=self.name,
            interval=self.output_interval,
            alarm=self._alarm,
        )

    def _started(self, ctx: WorkContext) -> None:
        self._context = ctx

    async def _run(self, spec: JobSpec, reporter: ActorRef) -> None:
        overran: list[anyio.Event] = []
        output = self._live_output(spec, reporter)
        try:
            result = await run_attempt(
                spec,
                registry=self.registry,
                kind=self.kind,
                on_progress=output.progress,
                output=output,
                middleware=self.middleware,
                on_context=self._started,
                on_overrun=overran.append,
                grace=self.grace,
                pool=self.pool,
                worker=self.name,
            )
        finally:
            self._context = None
            if not overran:
                self._job = None
        remainder = output.remainder()
        if remainder is not None:
            await reporter.tell(remainder)
        if not overran:
            await reporter.tell(WorkFinished(result))
            return
        # The work ignored its stop and still runs in its thread: the attempt is over,
        # but this worker stays busy until the thread returns (F27).
        self.log.warning("work_overran", job_id=spec.id, attempt=spec.attempt)
        try:
            await reporter.tell(WorkFinished(result, overrunning=True))
            await overran[0].wait()
        finally:
            self._job = None
        self.log.info("work_thread_returned", job_id=spec.id, attempt=spec.attempt)
        await reporter.tell(WorkerFreed(self.name, spec.id, spec.attempt))
