"""Works the dashboard's browser tests run: one that steps when the test says so, one
whose log is hostile markup, one that fails until the test lets it succeed, and a
workflow of the first and the last."""

from __future__ import annotations

import anyio
import msgspec

from actorwork import WorkContext, work
from actorwork.workflow import Node, parallel, sequence, workflow
from actorwork.workflow import step as node

#: Gates a ``dash.steps`` job waits on, by name (``"<name>/<step>"``); the test opens them.
GATES: dict[str, anyio.Event] = {}
#: Whether ``dash.fragile`` fails; the test flips it.
BROKEN = {"now": True}
#: How many times each ``dash.fragile`` label (and ``steps/<name>``) ran.
RUNS: dict[str, int] = {}
#: What a hostile log line would set if the page ran it.
HOSTILE = (
    "<script>window.__pwned = 1</script>",
    '<img src="x" onerror="window.__pwned = 2">',
)


def gate(name: str) -> anyio.Event:
    """The gate ``name`` (made on first use, on the running loop)."""
    return GATES.setdefault(name, anyio.Event())


class Steps(msgspec.Struct):
    name: str
    count: int


@work(name="dash.steps", retries=0)
async def steps(ctx: WorkContext, job: Steps) -> int:
    """Before each of ``count`` steps, waits for gate ``name/step``; then logs a line and
    reports progress ``step / count``."""
    RUNS[f"steps/{job.name}"] = RUNS.get(f"steps/{job.name}", 0) + 1
    for step in range(1, job.count + 1):
        await gate(f"{job.name}/{step}").wait()
        ctx.log.info(f"step {step} of {job.count}")
        ctx.progress(step / job.count, f"step {step}")
    return job.count


@work(name="dash.hostile", retries=0)
def hostile(ctx: WorkContext, label: str) -> str:
    """Logs and prints markup that would run script if a page parsed it."""
    for line in HOSTILE:
        ctx.log.warning(line, label=label)
        print(line)
    return HOSTILE[0]


@work(name="dash.fragile", retries=0)
def fragile(ctx: WorkContext, label: str) -> str:
    """Raises while ``BROKEN["now"]`` (one attempt: dead at once); else succeeds."""
    RUNS[label] = RUNS.get(label, 0) + 1
    if BROKEN["now"]:
        raise ConnectionError(f"the service for {label!r} is down")
    return f"{label} done"


@workflow
def report(name: str) -> Node:
    """A ``dash.steps`` node of one step (gate ``name/1``), two of no steps in parallel,
    then a ``dash.fragile`` one."""
    charts = parallel(
        bar=node(steps, Steps(f"{name}-bar", 0)), pie=node(steps, Steps(f"{name}-pie", 0))
    )
    return sequence(fetch=node(steps, Steps(name, 1)), charts=charts, publish=node(fragile, name))
