"""Works the WebSocket and browser tests run: one that steps when the test says so,
one that logs long lines (many bytes of events), and a workflow of two steps."""

from __future__ import annotations

import anyio
import msgspec

from actorwork import WorkContext, work
from actorwork.workflow import Node, sequence, workflow
from actorwork.workflow import step as node

#: Gates a ``steps`` job waits on, by name (``"<job name>/<step>"``); the test opens them.
GATES: dict[str, anyio.Event] = {}


def gate(name: str) -> anyio.Event:
    """The gate ``name`` (made on first use, on the running loop)."""
    return GATES.setdefault(name, anyio.Event())


class Steps(msgspec.Struct):
    name: str
    count: int


class Loud(msgspec.Struct):
    lines: int
    width: int


@work(name="ws.steps", retries=0)
async def steps(ctx: WorkContext, job: Steps) -> int:
    """Reports progress 0, then before each of ``count`` steps waits for gate
    ``name/step``, logs a line and reports progress ``step / count``."""
    name, count = job.name, job.count
    ctx.progress(0.0, "started")
    for step in range(1, count + 1):
        await gate(f"{name}/{step}").wait()
        ctx.log.info(f"step {step} of {count}")
        ctx.progress(step / count, f"step {step}")
    return count


@work(name="ws.loud", retries=0)
async def loud(ctx: WorkContext, job: Loud) -> int:
    """Logs ``lines`` lines ``width`` characters long, reporting progress after each."""
    lines, width = job.lines, job.width
    for index in range(lines):
        ctx.log.info("x" * width, index=index)
        ctx.progress((index + 1) / lines)
    return lines


@workflow
def pair() -> Node:
    """Two ``ws.steps`` nodes of no steps, one after the other."""
    first, second = node(steps, Steps("first", 0)), node(steps, Steps("second", 0))
    return sequence(first=first, second=second)
