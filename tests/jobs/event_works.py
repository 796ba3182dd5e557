"""Works the event and middleware tests run; importable by child processes."""

from __future__ import annotations

import anyio

from actorwork import WorkContext, work

#: Gates a ``gated`` job waits on, by its payload; the test opens them.
GATES: dict[str, anyio.Event] = {}


def gate(name: str) -> anyio.Event:
    """The gate ``name`` (made on first use, on the running loop)."""
    return GATES.setdefault(name, anyio.Event())


@work(name="events.gated", retries=0)
async def gated(ctx: WorkContext, name: str) -> str:
    """Logs a line, reports progress, adds an artifact, then waits for its gate."""
    ctx.log.info("waiting at the gate", gate=name)
    ctx.progress(0.25, "at the gate")
    ctx.add_artifact("note.txt", b"hello", media_type="text/plain")
    await gate(name).wait()
    return name


@work(name="events.context", retries=0)
def context(ctx: WorkContext) -> dict[str, str]:
    """Returns the job's context as the work sees it."""
    return dict(ctx.context)


@work(name="events.flaky", retries=1)
def flaky(ctx: WorkContext) -> str:
    """Fails its first attempt, succeeds its second."""
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
    return "ok"


@work(name="events.flaky_context", retries=1)
def flaky_context(ctx: WorkContext) -> dict[str, str]:
    """Fails its first attempt; its second returns the job's context as it sees it."""
    if ctx.attempt == 1:
        raise RuntimeError("first attempt fails")
    return dict(ctx.context)


@work(name="events.chatty", retries=0)
async def chatty(ctx: WorkContext, lines: int) -> int:
    """Logs ``lines`` lines and reports progress as often."""
    for index in range(lines):
        ctx.log.info("line", index=index)
        ctx.progress(index / lines, f"line {index}")
    return lines
