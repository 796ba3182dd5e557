"""PDFs per minute through the job system: local Chromium, Chromium containers, and
docker pools of rendering workers.

Run from the repository root::

    .venv/bin/python bench/pdf.py                   # full run, about two minutes
    .venv/bin/python bench/pdf.py --quick           # smoke run
    .venv/bin/python bench/pdf.py --markdown        # the table as markdown
    .venv/bin/python bench/pdf.py --only local,docker-2 --pdfs 100 --workers 8
    .venv/bin/python bench/pdf.py --only local,pool-1,pool-2,pool-4   # the production shape

Every row is an inline job system (Scheduler, a ``local`` Pool of ``--workers``
workers and the ``chromium.pdf`` work in this process) whose browsers are set by the
row: ``local`` launches Debian's ``chromium``; ``docker-1`` and ``docker-2`` start 1 and
2 containers of the Chromium image (``[chromium] instances``), DevTools on
127.0.0.1. ``pool-1``, ``pool-2`` and ``pool-4`` are the production shape: a ``docker``
pool of 1, 2 and 4 containers of the rendering worker image
(``scripts/build-worker-image.sh --chromium``, ``--image``), each running one worker
whose works launch Chromium in that container; the Scheduler stays in this process
(``local`` topology), and ``--workers`` does not apply. Each render is the same
two-page HTML report that fills in a table from a script and then calls
``window.actorworkReady()``, printed to A4 with backgrounds.

``cold s``
    The first job of the row, submitted with no browser running, until its result
    (launching Chromium or starting the containers, connecting, rendering). For the
    ``pool-N`` rows the clock starts before the job system does, so it is the cold
    start of a rendering worker: its container started and connected, the worker
    spawned in it, Chromium launched in the container, the page rendered.
``PDFs/min``
    With the browsers warm, ``--pdfs`` jobs submitted at once and every result
    awaited: the count divided by the time from the first submit to the last result.
``p50 s``
    The median time one of those jobs ran (its worker's start to end), so queueing
    behind the other jobs is not in it.
``vs local``
    PDFs/min divided by the ``local`` row's from the same run.

The rows take turns ``--repeat`` times and each cell is the median of its runs. The
machine's cores are shared by the job system, the browsers and, for containers, the
Docker engine; the header says how many there are.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from _table import format_table, host_line, quiet_logs

from actorwork import JobSystem
from actorwork.chromium import PdfRequest, close_browsers, configure
from actorwork.config import ChromiumSettings, load_config
from actorwork.docker.images import CHROMIUM_WORKER_IMAGE

ROWS = {
    "local": ChromiumSettings(mode="local"),
    "docker-1": ChromiumSettings(mode="docker", instances=1),
    "docker-2": ChromiumSettings(mode="docker", instances=2),
}
#: The production-shape rows: a docker pool of this many rendering workers.
POOLS = {"pool-1": 1, "pool-2": 2, "pool-4": 4}
COLUMNS = ("chromium", "browsers", "workers", "cold s", "PDFs/min", "p50 s", "vs local")

REPORT = """<!doctype html>
<html><head><style>
  body { font-family: sans-serif; } th { background: #234; color: white; }
  td, th { padding: 0.3em 1em; border-bottom: 1px solid #ccc; }
  .next { page-break-before: always; }
</style></head>
<body>
  <h1>Render report {n}</h1>
  <table id="rows"><tr><th>item</th><th>value</th></tr></table>
  <div class="next"><h2>Appendix</h2><p>The second page.</p></div>
  <script>
    const table = document.getElementById("rows");
    for (let i = 0; i < 40; i++) {
      table.insertRow().innerHTML = `<td>item ${i}</td><td>${(i * 7.31).toFixed(2)}</td>`;
    }
    window.actorworkReady();
  </script>
</body></html>
"""


@dataclass
class Row:
    name: str
    browsers: int
    workers: int
    cold: list[float] = field(default_factory=list)
    per_minute: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    error: str = ""


def _config(folder: Path, workers: int, image: str = "") -> str:
    """Inline with a ``local`` pool of ``workers``; with ``image``, a docker pool of it."""
    pool = f'kind = "docker"\nimage = "{image}"\nnetwork = "none"' if image else 'kind = "local"'
    return f"""
[jobs]
topology = "{"local" if image else "inline"}"
modules = ["actorwork.chromium"]

[scheduler]
address = "inproc://bench-pdf-{folder.name}"
store = "{folder}/jobs.db"

[pools.benchpdf]
{pool}
size = {workers}
outbox = "{folder}/outbox"
"""


def _request(n: int) -> PdfRequest:
    return PdfRequest(html=REPORT.replace("{n}", str(n)), wait_for_ready=True)


async def measure(row: Row, settings: ChromiumSettings, pdfs: int, image: str = "") -> None:
    """One run of ``row``: a cold job, then ``pdfs`` jobs at once on warm browsers.

    With ``image`` the row is a docker pool of ``row.workers`` rendering workers.
    """
    with tempfile.TemporaryDirectory(prefix="bench-pdf-") as tmp:
        folder = Path(tmp)
        path = folder / "actorwork.toml"
        path.write_text(_config(folder, row.workers, image))
        configure(settings)
        try:
            started = time.perf_counter()  # a docker pool starts its containers here
            async with JobSystem(load_config(path, env={})) as jobs:
                if not image:
                    started = time.perf_counter()
                await (await jobs.submit("chromium.pdf", _request(0))).result(timeout=300)
                row.cold.append(time.perf_counter() - started)
                # Warm every browser of the row before timing (docker-2 starts its
                # second container at the first job that finds the first one busy;
                # each worker of a pool launches its browser at its first job).
                count = max(4, 2 * row.workers) if image else 4
                warm = [await jobs.submit("chromium.pdf", _request(0)) for _ in range(count)]
                for handle in warm:
                    await handle.result(timeout=300)
                started = time.perf_counter()
                handles = [await jobs.submit("chromium.pdf", _request(n)) for n in range(pdfs)]
                ran = []
                for handle in handles:
                    view = await handle.wait(timeout=600)
                    if view.status != "succeeded" or view.result is None:
                        raise RuntimeError(f"job {view.id} ended {view.status}: {view.error}")
                    ran.append(view.result.finished - view.result.started)
                row.per_minute.append(pdfs / (time.perf_counter() - started) * 60)
                row.p50.append(statistics.median(ran))
        finally:
            await close_browsers()
            configure(None)


def cells(row: Row, local: float | None) -> list[str]:
    if row.error:
        return [row.name, str(row.browsers), str(row.workers), "-", "-", "-", row.error]
    per_minute = statistics.median(row.per_minute)
    ratio = f"{per_minute / local:.2f}" if local else "-"
    return [
        row.name,
        str(row.browsers),
        str(row.workers),
        f"{statistics.median(row.cold):.2f}",
        f"{per_minute:,.0f}",
        f"{statistics.median(row.p50):.2f}",
        ratio,
    ]


def header(args: argparse.Namespace) -> str:
    version = subprocess.run(
        ["chromium", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return (
        f"{host_line()}; {version or 'no local chromium'}; image {ROWS['docker-1'].image}, "
        f"pools {args.image}; {args.pdfs} PDFs per run, {args.repeat} runs per row"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--pdfs", type=int, default=60, help="timed PDFs per run")
    parser.add_argument("--workers", type=int, default=4, help="workers of the pool")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row")
    parser.add_argument(
        "--only", default="", help=f"rows, comma-separated: {', '.join([*ROWS, *POOLS])}"
    )
    parser.add_argument(
        "--image", default=CHROMIUM_WORKER_IMAGE, help="the pool rows' rendering worker image"
    )
    parser.add_argument("--quick", action="store_true", help="10 PDFs, 1 run per row")
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    args = parser.parse_args(argv)
    if args.quick:
        args.pdfs, args.repeat = 10, 1
    known = [*ROWS, *POOLS]
    args.rows = [name for name in (args.only.split(",") if args.only else known) if name]
    unknown = [name for name in args.rows if name not in known]
    if unknown:
        parser.error(f"unknown rows {unknown} (known: {', '.join(known)})")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_logs()
    print(header(args), file=sys.stderr)
    rows = {
        name: Row(name, POOLS[name], POOLS[name])
        if name in POOLS
        else Row(name, ROWS[name].instances, args.workers)
        for name in args.rows
    }
    if "local" in rows and shutil.which("chromium") is None:
        rows["local"].error = "no chromium (scripts/install-chromium.sh)"
    for run in range(args.repeat):
        for name, row in rows.items():
            if row.error:
                continue
            try:
                if name in POOLS:
                    anyio.run(measure, row, ChromiumSettings(), args.pdfs, args.image)
                else:
                    anyio.run(measure, row, ROWS[name], args.pdfs)
            except Exception as exc:
                row.error = f"{type(exc).__name__}: {exc}"[:120]
            print(f"run {run + 1}/{args.repeat} {name}: done", file=sys.stderr)
    local_row = rows.get("local")
    local = (
        statistics.median(local_row.per_minute)
        if local_row is not None and local_row.per_minute and not local_row.error
        else None
    )
    notes = [
        header(args),
        "cold s: first job with no browser running (pool-N: from starting the pool);"
        " p50 s: median job run time when warm",
    ]
    table = format_table(
        COLUMNS,
        [cells(row, local) for row in rows.values()],
        notes,
        numeric={1, 2, 3, 4, 5, 6},
        markdown=args.markdown,
    )
    print(table)
    return 1 if any(row.error for row in rows.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
