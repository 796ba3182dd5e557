"""examples/chromium: everything inline, only Chromium in its container, one config file."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pypdf

from actorwork.chromium import CONTAINER_LABEL
from actorwork.config import load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "chromium"


def _containers() -> set[str]:
    listed = subprocess.run(
        ["docker", "ps", "--all", "--quiet", "--filter", f"label={CONTAINER_LABEL}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return set(listed.stdout.split())


def test_the_config_is_inline_with_chromium_in_docker() -> None:
    config = load_config(EXAMPLE / "actorwork.toml", env={})
    assert config.jobs.topology == "inline"
    assert config.chromium.mode == "docker"


def test_the_example_renders_its_report_and_leaves_no_container(
    tmp_path: Path, chromium_image: str
) -> None:
    before = _containers()
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "render.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "console type='log' text='report filled in 3 rows'" in done.stdout
    data = (tmp_path / "rendered" / "report.pdf").read_bytes()
    [page] = pypdf.PdfReader(io.BytesIO(data)).pages
    assert "Weekly render report" in page.extract_text()
    assert (tmp_path / "rendered" / "report.png").read_bytes().startswith(b"\x89PNG")
    assert _containers() <= before
