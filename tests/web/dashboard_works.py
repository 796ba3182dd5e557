"""Works the dashboard's browser tests run: one that steps when the test says so, one
whose log is hostile markup, and one that fails until the test lets it succeed."""

from __future__ import annotations

import anyio
import msgspec

from actorwork import WorkContext, work

#: Gates a ``dash.steps`` job waits on, by name (``"<name>/<step>"``); the test opens them.
GATES: dict[str, anyio.Event] = {}
#: Whether ``dash.fragile`` fails; the test flips it.
BROKEN = {"now": True}
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
    if BROKEN["now"]:
        raise ConnectionError(f"the service for {label!r} is down")
    return f"{label} done"
