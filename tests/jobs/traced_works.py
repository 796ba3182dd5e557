"""A work that makes a span of its own, for the tracing tests; importable by child
processes (it finds its process's tracer provider in :mod:`tests.jobs.tracing_setup`)."""

from __future__ import annotations

from actorwork import WorkContext, work
from tests.jobs.tracing_setup import provider


@work(name="tracing.step", retries=0)
def step(ctx: WorkContext) -> dict[str, str]:
    """Makes a span ``work step`` while it runs; returns the job's context."""
    with provider().get_tracer("tests").start_as_current_span("work step"):
        return dict(ctx.context)
