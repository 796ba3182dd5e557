"""A monthly sales report as a workflow, run inline with a local Chromium.

    python examples/workflow/report.py [MONTH] [CONFIG]     # MONTH like 2026-11

The tree: fetch the month's sales; draw three charts of them side by side (their SVGs
are gathered for the next step); mail the sales team only when the month has sales (a
condition, evaluated where the work runs); render the report with its charts to PDF
in Chromium. The program prints the workflow's id, a command that watches it
(``actorwork status``), and the tree once it ended; the PDF goes to ``./rendered/``
and the mail, which goes nowhere real, to ``./outbox/``.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import anyio
import msgspec

import actorwork
from actorwork import WorkContext
from actorwork.chromium import PdfRequest, Rendered, close_browsers, configure, render_pdf
from actorwork.cli.jobs import format_workflow
from actorwork.cli.main import configure_logging
from actorwork.messages import Artifact
from actorwork.workflow import Node, parallel, sequence, step, when

HERE = Path(__file__).resolve().parent
#: The shop opened in March 2020: the months before it have no sales.
OPENED = "2020-03"


class Sale(msgspec.Struct, frozen=True):
    day: int
    region: str
    amount: float


class Chart(msgspec.Struct, frozen=True):
    kind: str
    points: int
    svg: str


@actorwork.work(name="report.fetch")
def fetch(month: str) -> list[Sale]:
    """The month's sales (made up here, the same on every run)."""
    if month < OPENED:
        return []
    seed = sum(map(ord, month))
    regions = ("north", "south", "east")
    return [
        Sale(day, regions[(seed + day) % 3], float(40 + (seed * day) % 160)) for day in range(1, 29)
    ]


@actorwork.work(name="report.chart")
def chart(ctx: WorkContext, kind: str) -> Chart:
    """One chart of the sales the step before fetched, as SVG."""
    sales = [msgspec.convert(s, Sale) for s in ctx.previous or []]
    if not sales:
        return Chart(kind, 0, '<svg width="300" height="40"><text y="25">no sales</text></svg>')
    if kind == "regions":
        totals: dict[str, float] = {}
        for sale in sales:
            totals[sale.region] = totals.get(sale.region, 0.0) + sale.amount
        values = list(totals.values())
    elif kind == "running":
        values, total = [], 0.0
        for sale in sales:
            total += sale.amount
            values.append(total)
    else:
        values = [sale.amount for sale in sales]
    top = max(values) or 1.0
    width = 300 // len(values)
    bars = "".join(
        f'<rect x="{i * width}" y="{150 - 150 * v / top:.1f}" width="{max(width - 2, 1)}" '
        f'height="{150 * v / top:.1f}" fill="#357"/>'
        for i, v in enumerate(values)
    )
    return Chart(kind, len(values), f'<svg width="300" height="150">{bars}</svg>')


@actorwork.work(name="report.has_sales")
def has_sales(charts: dict[str, Chart]) -> bool:
    """The condition: did the month have sales (does any chart have points)?"""
    return any(chart.points for chart in charts.values())


@actorwork.work(name="report.mail")
def mail(ctx: WorkContext, month: str) -> str:
    """Tell the sales team the report is coming (written to ./outbox/, not sent)."""
    outbox = Path("outbox")
    outbox.mkdir(exist_ok=True)
    message = outbox / f"report-{month}.eml"
    headers = f"To: sales@example.org\nSubject: sales report {month}\n\n"
    message.write_text(headers + "The report is on its way.\n")
    ctx.log.info("mail_written", path=str(message))
    return str(message)


@actorwork.work(name="report.pdf", retries=1, timeout=180)
async def pdf(ctx: WorkContext, month: str) -> Rendered:
    """The report with the gathered charts, printed to PDF by Chromium."""
    charts = msgspec.convert(ctx.previous, dict[str, Chart])
    figures = "".join(
        f"<figure>{c.svg}<figcaption>{c.kind}</figcaption></figure>" for c in charts.values()
    )
    html = f"<!doctype html><html><body><h1>Sales, {month}</h1>{figures}</body></html>"
    return await render_pdf(ctx, PdfRequest(html=html, name=f"report-{month}.pdf"))


@actorwork.workflow(policy="stop")
def report(month: str) -> Node:
    """Fetch, three charts side by side, a mail only when there were sales, the PDF."""
    charts = parallel(
        daily=step(chart, "daily"),
        regions=step(chart, "regions"),
        running=step(chart, "running"),
    )
    return sequence(
        fetch=step(fetch, month),
        charts=charts,
        mail=when(has_sales, then=step(mail, month)),
        pdf=step(pdf, month),
    )


#: The events of a node that ended.
ENDED = ["job.succeeded", "job.failed", "job.dead", "job.cancelled"]


async def run(month: str, config_path: Path) -> tuple[actorwork.WorkflowView, list[Artifact]]:
    """Run the workflow for ``month``; its tree once it ended, and the PDF."""
    config = actorwork.load_config(config_path)
    configure(config.chromium)
    try:
        async with actorwork.JobSystem(config) as jobs:
            client = jobs.client
            assert client is not None
            flow = await client.submit_workflow(report, month)
            print(f"workflow {flow} submitted; watch it with:")
            print(f"  actorwork --config {config_path} status {flow}", flush=True)
            async with client.events(workflow=flow, kinds=ENDED) as events:
                tree = await client.workflow(flow)
                while tree.status == "running":
                    await anext(events)  # a node ended: look again
                    tree = await client.workflow(flow)
            rendered = next(node for node in tree.nodes if node.path == "report.pdf")
            view = await client.get(rendered.job_id)
            return tree, list(view.result.artifacts if view.result else ())
    finally:
        await close_browsers()


def main(month: str, config_path: Path) -> int:
    tree, artifacts = anyio.run(run, month, config_path)
    print(format_workflow(tree))
    out = Path("rendered")
    out.mkdir(exist_ok=True)
    for artifact in artifacts:
        (out / artifact.name).write_bytes(artifact.data)
        print(f"wrote {out / artifact.name} ({len(artifact.data)} bytes)")
    return 0 if tree.status == "succeeded" else 1


if __name__ == "__main__":
    configure_logging("warning")
    chosen = sys.argv[1] if len(sys.argv) > 1 else dt.date.today().strftime("%Y-%m")
    config_file = Path(sys.argv[2]) if len(sys.argv) > 2 else HERE / "actorwork.toml"
    sys.exit(main(chosen, config_file))
