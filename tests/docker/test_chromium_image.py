"""The rendering worker image's recipe (``actorwork image build --chromium``), without an engine."""

from __future__ import annotations

import subprocess
import sys

from actorwork.docker.images import CHROMIUM_FONTS, dockerfile
from tests.docker.conftest import REPO


def test_a_rendering_worker_adds_fonts_and_runs_the_worker_not_the_browser() -> None:
    text = dockerfile(
        "actorwork/chromium:bookworm", ["actorwork[chromium]==0.1.0"], "actorwork", chromium=True
    )
    lines = text.splitlines()
    assert lines[0] == "FROM actorwork/chromium:bookworm"
    assert 'ENTRYPOINT ["/usr/bin/tini", "--"]' in lines
    assert "HEALTHCHECK NONE" in lines
    fonts = next(i for i, line in enumerate(lines) if "apt-get install" in line)
    assert all(font in lines[fonts] for font in CHROMIUM_FONTS)
    # Fonts before the wheels, so a code change rebuilds only the last layers.
    assert fonts < next(i for i, line in enumerate(lines) if line.startswith("COPY wheelhouse"))
    assert "'actorwork[chromium]==0.1.0'" in text
    assert lines[-2:] == ["USER actorwork", 'CMD ["actorwork", "version"]']


def test_a_plain_worker_has_no_browser_steps() -> None:
    text = dockerfile("actorwork/debian-python:bookworm", ["actorwork==0.1.0"], "actorwork")
    assert "ENTRYPOINT" not in text
    assert "apt-get" not in text


def test_the_chromium_flag_is_offered_and_a_bad_tag_still_refused() -> None:
    command = [sys.executable, "-m", "actorwork", "image", "build", "--chromium"]
    done = subprocess.run(
        [*command, "--tag", "Bad Tag!"], check=False, cwd=REPO, capture_output=True, text=True
    )
    assert done.returncode == 2
    assert "--tag = 'Bad Tag!' is not an image reference" in done.stderr
