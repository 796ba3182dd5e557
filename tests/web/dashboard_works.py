"""Works the dashboard's browser tests run: one that steps when the test says so, one
whose log is hostile markup, one that fails until the test lets it succeed, and a
workflow of the first and the last, and one that makes a PDF."""

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


def tiny_pdf(text: str) -> bytes:
    """A one-page PDF that shows ``text`` (ASCII letters and spaces)."""
    stream = f"BT /F1 24 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


@work(name="dash.pdf", retries=0)
def pdf(ctx: WorkContext, title: str) -> int:
    """Adds a one-page PDF showing ``title`` as the artifact ``report.pdf``."""
    data = tiny_pdf(title)
    ctx.add_artifact("report.pdf", data, media_type="application/pdf")
    return len(data)
