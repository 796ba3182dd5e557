"""OpenTelemetry tracing, built as middleware: one trace from a submit to the work.

Install the extra (``pip install 'actorwork[otel]'``) and name it in the config::

    [jobs]
    middleware = ["actorwork.tracing:Tracing"]

Three spans per attempt, in one trace:

* ``actorwork.submit WORK`` (kind ``PRODUCER``), in the client, a child of the span
  current there (if any). Its W3C trace context (``traceparent``, and ``tracestate``
  when there is one) is added to the job's context, which the store keeps with the job
  (so the trace goes on after a Scheduler restart, and into retries).
* ``actorwork.dispatch WORK`` (``INTERNAL``), in the Scheduler, once the dispatch of an
  attempt to a Pool is committed: a child of the submit span.
* ``actorwork.run WORK`` (``CONSUMER``), in the worker, around the work (and the run
  hooks after this middleware): a child of the submit span, current while the work
  runs, so spans the work makes are its children. A work that raises ends it with an
  error status and the exception recorded.

Dispatch and run are both children of the submit span: the dispatch hook sees the
attempt once it is sent, too late to hand the worker a parent of its own. The spans
carry ``actorwork.work`` and ``actorwork.queue``, and (dispatch, run) ``actorwork.job_id``
and ``actorwork.attempt``; the submit span has the job id when the submit names one.

Spans go to the tracer provider of each process: the global one
(``opentelemetry.trace.set_tracer_provider``), or the one given to
:class:`Tracing`. Each role loads the middleware in its own process — process and
container workers included — so a provider must be set up in each; name a factory of
your own that does it once and returns ``Tracing()``::

    [jobs]
    middleware = ["myapp.telemetry:tracing"]

Without a provider the spans cost next to nothing and go nowhere.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from opentelemetry import trace
from opentelemetry.trace import SpanKind, TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from actorwork._version import __version__
from actorwork.messages import JobSpec, SubmitJob
from actorwork.middleware import Middleware
from actorwork.work import WorkContext

__all__ = ["TRACE_FIELDS", "Tracing"]

#: The fields of a job's context that carry its trace (W3C Trace Context).
TRACE_FIELDS = ("traceparent", "tracestate")

_propagator = TraceContextTextMapPropagator()


class Tracing(Middleware):
    """Spans for submit, dispatch and run, linked through the job's context.

    ``tracer_provider`` is where the spans go (None: the global provider, as it is
    when a span starts, so it may be set after the config loaded).
    """

    def __init__(self, tracer_provider: TracerProvider | None = None) -> None:
        self.tracer = trace.get_tracer("actorwork", __version__, tracer_provider=tracer_provider)

    def submit(self, job: SubmitJob) -> SubmitJob:
        """Start and end the submit span; the job's context carries it on."""
        attributes = {"actorwork.work": job.work, "actorwork.queue": job.queue or "default"}
        if job.job_id:
            attributes["actorwork.job_id"] = job.job_id
        with self.tracer.start_as_current_span(
            f"actorwork.submit {job.work}", kind=SpanKind.PRODUCER, attributes=attributes
        ):
            carrier: dict[str, str] = {}
            _propagator.inject(carrier)
        context = {k: v for k, v in job.context.items() if k not in TRACE_FIELDS}
        return msgspec.structs.replace(job, context={**context, **carrier})

    def dispatch(self, job: JobSpec) -> None:
        """A span for the dispatch of an attempt, a child of the submit's."""
        span = self.tracer.start_span(
            f"actorwork.dispatch {job.work}",
            context=_propagator.extract(job.context),
            kind=SpanKind.INTERNAL,
            attributes=_attributes(job.id, job.work, job.queue, job.attempt),
        )
        span.end()

    async def run(self, ctx: WorkContext, call_next: Callable[[], Awaitable[Any]]) -> Any:
        """The work inside the run span, a child of the submit's."""
        with self.tracer.start_as_current_span(
            f"actorwork.run {ctx.work}",
            context=_propagator.extract(ctx.context),
            kind=SpanKind.CONSUMER,
            attributes=_attributes(ctx.job_id, ctx.work, ctx.queue, ctx.attempt),
        ):
            return await call_next()


def _attributes(job_id: str, work: str, queue: str, attempt: int) -> dict[str, str | int]:
    return {
        "actorwork.job_id": job_id,
        "actorwork.work": work,
        "actorwork.queue": queue,
        "actorwork.attempt": attempt,
    }
