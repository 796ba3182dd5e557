"""examples/workflow: the report workflow runs inline, as the README says, with a local
Chromium; ``actorwork status`` shows its tree while it runs and after."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pypdf

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "workflow"
CONFIG = EXAMPLE / "actorwork.toml"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def _status(cwd: Path, workflow_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorwork", "--config", str(CONFIG), "status", workflow_id],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _report(cwd: Path, month: str) -> subprocess.Popen[str]:
    """``python examples/workflow/report.py MONTH``, as the README runs it."""
    return subprocess.Popen(
        [sys.executable, str(EXAMPLE / "report.py"), month],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _node_line(out: str, path: str) -> str:
    return next(line for line in out.splitlines() if line.strip().startswith(f"{path} "))


def test_the_report_workflow_renders_its_pdf_and_is_watched_with_status(
    tmp_path: Path, local_chromium: str
) -> None:
    app = _report(tmp_path, "2026-11")
    assert app.stdout is not None
    first = app.stdout.readline()  # "workflow ID submitted; watch it with:"
    assert first.startswith("workflow wf-"), first
    workflow_id = first.split()[1]
    watched = _status(tmp_path, workflow_id)  # while it runs, or just after
    out, err = app.communicate(timeout=300)
    assert app.returncode == 0, out + err
    assert watched.returncode == 0, watched.stderr
    assert f"workflow {workflow_id}  report" in watched.stdout
    assert "report.charts.daily" in watched.stdout
    for path in ("report.fetch", "report.charts.regions", "report.mail.then", "report.pdf"):
        assert "succeeded" in _node_line(out, path), out
    pdf = tmp_path / "rendered" / "report-2026-11.pdf"
    text = "".join(
        page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf.read_bytes())).pages
    )
    assert "Sales, 2026-11" in text
    assert (tmp_path / "outbox" / "report-2026-11.eml").exists()
    shown = _status(tmp_path, workflow_id)  # after: every node with its status and time
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(f"workflow {workflow_id}  report  succeeded")
    line = _node_line(shown.stdout, "report.pdf")
    assert "succeeded" in line
    assert line.split()[2].endswith("s")  # how long it ran


def test_an_empty_month_skips_the_mail_and_still_renders(
    tmp_path: Path, local_chromium: str
) -> None:
    app = _report(tmp_path, "2019-01")
    out, err = app.communicate(timeout=300)
    assert app.returncode == 0, out + err
    mail = _node_line(out, "report.mail.then")
    assert "skipped" in mail
    assert "branch not taken: report.has_sales returned False" in mail
    assert "succeeded" in _node_line(out, "report.pdf")
    assert not (tmp_path / "outbox").exists()
    assert (tmp_path / "rendered" / "report-2019-01.pdf").read_bytes().startswith(b"%PDF")
