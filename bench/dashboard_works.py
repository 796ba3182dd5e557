"""Works of ``bench/browser_dashboard.py``: the no-op of ``bench_works``, and a busy job
that logs and reports progress until told to stop (the job page watched meanwhile)."""

from __future__ import annotations

import anyio
from bench_works import noop

from actorwork import WorkContext, work

__all__ = ["STOP", "busy", "noop"]

#: Set to end the running ``bench.busy`` job.
STOP: dict[str, anyio.Event] = {}


@work(name="bench.busy", retries=0, timeout=3600)
async def busy(ctx: WorkContext, name: str) -> int:
    """A line and a progress report every 10 ms until ``STOP[name]`` is set."""
    stop = STOP.setdefault(name, anyio.Event())
    step = 0
    while not stop.is_set():
        step += 1
        ctx.log.info(f"working on item {step}", item=step)
        ctx.progress((step % 1000) / 1000, f"item {step}")
        with anyio.move_on_after(0.01):
            await stop.wait()
    return step
