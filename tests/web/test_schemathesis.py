"""schemathesis against the OpenAPI document of a real ``actorwork api``: it finds nothing.

Every check schemathesis has runs (server errors, status codes and bodies that the
document does not list, requests it says are valid that the API refuses and the
reverse, ``Allow`` headers), with a fixed seed so a run repeats. ``/events`` is left
out: an event stream never ends, and test_api.py tests it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.web.process import serving

pytestmark = pytest.mark.slow

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.mark.skipif(not SCHEMATHESIS.exists(), reason="schemathesis is not installed")
def test_schemathesis_finds_nothing(tmp_path: Path) -> None:
    # An event stream never ends, which schemathesis cannot read as a response: the
    # stream is tested in test_api.py (its filters, its refusals, a real subscription).
    excluded = ["--exclude-path", "/events"]
    with serving(tmp_path, module="tests.web.works") as (base, _):
        run = subprocess.run(
            [
                str(SCHEMATHESIS),
                "run",
                f"{base}/openapi.json",
                "--checks",
                "all",
                "--max-examples",
                "25",
                "--workers",
                "1",
                "--seed",
                "1",
                "-H",
                "Host: 127.0.0.1",
                *excluded,
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    assert run.returncode == 0, run.stdout[-6000:]
