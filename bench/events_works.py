"""Works of ``bench/events.py``: the no-op of ``bench_works`` and one that reports progress."""

from __future__ import annotations

import time

import anyio
from bench_works import noop

from actorwork import WorkContext, work

__all__ = ["noop", "progress"]


@work(name="bench.progress")
async def progress(ctx: WorkContext, reports: int) -> None:
    """Report progress ``reports`` times, 60 ms apart (so none waits for a batch), each
    stamped with the wall time."""
    for index in range(reports):
        ctx.progress(index / reports, repr(time.time()))
        await anyio.sleep(0.06)
