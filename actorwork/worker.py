"""The Worker: runs one attempt of one job at a time and reports how it went.

A Worker is an actor. Its Pool tells it :class:`ExecuteJob`; it runs the work in the
background (so it can still hear :class:`StopJob`), and tells the Pool
:class:`JobProgressed` while the work reports progress and :class:`WorkFinished` with
the :class:`WorkResult` at the end. The Worker never retries: attempts are the
Scheduler's business.

Kinds: ``local`` runs async work on the Worker's own loop and sync work in a thread
of the default pool; ``thread`` runs every work in a thread of its own, async work on
an event loop in that thread, so a work that blocks its loop stalls nothing else. A
``process`` Pool runs a ``local`` Worker in a child process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import traceback
from collections.abc import Callable
from typing import Any, Literal, assert_never

import anyio
import anyio.to_thread
import msgspec

from actorwork.capture import JobCapture, install
from actorwork.errors import ActorStopped, PayloadError, WorkFailed, WorkNotFound
from actorwork.messages import (
    ExecuteJob,
    JobProgressed,
    JobSpec,
    Outcome,
    StopJob,
    WorkFinished,
    WorkResult,
)
from actorwork.runtime import Actor, ActorRef
from actorwork.work import Work, WorkContext, WorkRegistry, default_registry

__all__ = ["Worker", "WorkerKind", "run_attempt"]

WorkerKind = Literal["local", "thread"]

_encoder = msgspec.msgpack.Encoder()


async def run_attempt(
    spec: JobSpec,
    *,
    registry: WorkRegistry | None = None,
    kind: WorkerKind = "local",
    on_progress: Callable[[float | None, str], None] | None = None,
    on_context: Callable[[WorkContext], None] | None = None,
    pool: str = "",
    worker: str = "",
) -> WorkResult:
    """Run one attempt of ``spec`` and describe how it ended; never raises for the work.

    An unknown work or a payload that fails validation ends the attempt as ``failed``
    (running it again cannot help). A timeout ends it as ``timeout``; a sync work
    still running then is told to stop at its next check-in and left to finish.
    ``on_context`` receives the attempt's context before the work starts (the Worker
    keeps it to pass on stop requests).
    """
    started = time.time()
    install()  # cheap when done: re-wraps sys.stdout if someone replaced it since
    capture = JobCapture(job_id=spec.id, work=spec.work)
    ctx = WorkContext(
        job_id=spec.id,
        attempt=spec.attempt,
        work=spec.work,
        queue=spec.queue,
        log=capture.logger,
        on_progress=on_progress,
    )
    if on_context is not None:
        on_context(ctx)
    outcome: Outcome = "succeeded"
    value: bytes | None = None
    error = trace = ""
    with capture:
        try:
            item = (registry or default_registry).get(spec.work)
            payload = item.decode_payload(spec.payload)
            # No cancel scope at all for the common case of no timeout: this is per job.
            limit = anyio.fail_after(spec.timeout) if spec.timeout else contextlib.nullcontext()
            with limit:
                returned = await _invoke(item, ctx, payload, kind)
        except (WorkNotFound, PayloadError, WorkFailed) as exc:
            outcome, error = "failed", _describe(exc)
            capture.logger.warning("work_failed", error=error)
        except TimeoutError as exc:
            ctx.request_stop("timed out")
            outcome, error, trace = "timeout", f"timed out after {spec.timeout} s", _format(exc)
            capture.logger.error("work_timed_out", timeout=spec.timeout)
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
    if outcome == "succeeded" and ctx.stop_reason == "cancelled":
        outcome = "cancelled"
    return WorkResult(
        job_id=spec.id,
        attempt=spec.attempt,
        outcome=outcome,
        value=value,
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


async def _invoke(item: Work, ctx: WorkContext, payload: Any, kind: WorkerKind) -> Any:
    args, kwargs = item.arguments(ctx, payload)
    if kind == "thread":
        limiter = anyio.CapacityLimiter(1)
        if item.is_async:
            return await anyio.to_thread.run_sync(
                _run_loop, item.func, args, kwargs, limiter=limiter, abandon_on_cancel=True
            )
        return await anyio.to_thread.run_sync(
            lambda: item.func(*args, **kwargs), limiter=limiter, abandon_on_cancel=True
        )
    if item.is_async:
        return await item.func(*args, **kwargs)
    return await anyio.to_thread.run_sync(
        lambda: item.func(*args, **kwargs), abandon_on_cancel=True
    )


def _run_loop(func: Callable[..., Any], args: list[Any], kwargs: dict[str, Any]) -> Any:
    return asyncio.run(func(*args, **kwargs))


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
    ) -> None:
        if kind not in ("local", "thread"):
            raise ValueError(f"worker kind must be 'local' or 'thread', got {kind!r}")
        self.kind: WorkerKind = kind
        self.modules = list(modules)
        self.pool = pool
        self.registry = registry or default_registry
        #: The job being run, from the moment its ExecuteJob is taken until its result
        #: is handed over, so a second ExecuteJob meanwhile is refused.
        self._job: JobSpec | None = None
        #: The job taken but not yet started by the runner task, and whom to report to.
        self._queued: tuple[JobSpec, ActorRef] | None = None
        self._wake: asyncio.Future[None] | None = None
        self._context: WorkContext | None = None

    async def on_start(self) -> None:
        self.registry.import_modules(self.modules)
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

    def _progress_reporter(
        self, spec: JobSpec, reporter: ActorRef
    ) -> Callable[[float | None, str], None]:
        loop = asyncio.get_running_loop()

        def progressed(fraction: float | None, text: str) -> None:
            update = JobProgressed(spec.id, spec.attempt, fraction, text)
            loop.call_soon_threadsafe(self.start_soon, reporter.tell, update)

        return progressed

    def _started(self, ctx: WorkContext) -> None:
        self._context = ctx

    async def _run(self, spec: JobSpec, reporter: ActorRef) -> None:
        try:
            result = await run_attempt(
                spec,
                registry=self.registry,
                kind=self.kind,
                on_progress=self._progress_reporter(spec, reporter),
                on_context=self._started,
                pool=self.pool,
                worker=self.name,
            )
        finally:
            self._job = self._context = None
        await reporter.tell(WorkFinished(result))
