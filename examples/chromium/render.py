"""Render a page to PDF (and PNG) through an inline job system; Chromium in a container.

    python examples/chromium/render.py                 # a built-in report that signals ready
    python examples/chromium/render.py URL [CONFIG]    # any page

The PDF and PNG are written to ``./rendered/``; the job's logs, with the page's
console messages, are printed. ``[chromium] mode = "local"`` in the config file runs
Debian's chromium instead of the container; nothing else changes. With
``production.toml`` (a Scheduler and a docker Pool running as processes, see the
file) this program is only a client; the works and Chromium run in the containers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from actorwork import JobSystem, JobView
from actorwork.chromium import PdfRequest, PngRequest, close_browsers, configure
from actorwork.cli.jobs import format_job
from actorwork.cli.main import configure_logging
from actorwork.config import load_config

HERE = Path(__file__).resolve().parent

# The page fills in its numbers after loading, then says it is ready to print.
REPORT = """<!doctype html>
<html><head><style>
  body { font-family: sans-serif; margin: 0; }
  h1 { background: #234; color: white; padding: 1em; }
  td { padding: 0.3em 1em; border-bottom: 1px solid #ccc; }
</style></head>
<body>
  <h1>Weekly render report</h1>
  <table id="rows"></table>
  <script>
    const rows = [["pages", 12], ["failures", 0], ["median seconds", 0.4]];
    setTimeout(() => {
      for (const [name, value] of rows) {
        document.getElementById("rows").insertRow().innerHTML =
          `<td>${name}</td><td>${value}</td>`;
      }
      console.log("report filled in", rows.length, "rows");
      window.actorworkReady();
    }, 300);
  </script>
</body></html>
"""


async def render(url: str, config_path: Path) -> list[JobView]:
    """Submit the page as a PDF and as a PNG; their views once they ended."""
    config = load_config(config_path)
    configure(config.chromium)  # the works read [chromium] from this file
    page = {"url": url} if url else {"html": REPORT, "wait_for_ready": True}
    try:
        async with JobSystem(config) as jobs:
            pdf = await jobs.submit("chromium.pdf", PdfRequest(**page, name="report.pdf"))
            png = await jobs.submit("chromium.png", PngRequest(**page, name="report.png"))
            return [await pdf.wait(timeout=300), await png.wait(timeout=300)]
    finally:
        await close_browsers()  # the container stops now, not when the loop ends


def main(url: str, config_path: Path) -> int:
    views = anyio.run(render, url, config_path)
    out = Path("rendered")
    out.mkdir(exist_ok=True)
    for view in views:
        print(format_job(view, logs=True))
        for artifact in view.result.artifacts if view.result else []:
            (out / artifact.name).write_bytes(artifact.data)
            print(f"  wrote {out / artifact.name} ({len(artifact.data)} bytes)\n")
    return 0 if all(view.status == "succeeded" for view in views) else 1


if __name__ == "__main__":
    configure_logging("warning")
    target = sys.argv[1] if len(sys.argv) > 1 else ""
    config_file = Path(sys.argv[2]) if len(sys.argv) > 2 else HERE / "actorwork.toml"
    sys.exit(main(target, config_file))
