"""The README's calls against the API, as written: its curl block runs in bash against
a real ``actorwork api`` process (on a free port, put in place of the README's 7480),
and its Prometheus scrape config names the path and the port the API serves."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from actorwork.cli.api import DEFAULT_ADDRESS
from tests.test_readme import Block, blocks
from tests.web.process import serving

README_ADDRESS = "127.0.0.1:7480"


def _block(test: str) -> Block:
    (found,) = [b for b in blocks() if b.mark.endswith(f"test_readme_calls.py::{test}")]
    return found


@pytest.mark.slow
def test_the_readme_curl_calls_run_against_a_real_api(tmp_path: Path) -> None:
    script = _block("test_the_readme_curl_calls_run_against_a_real_api").text
    assert README_ADDRESS in script
    with serving(tmp_path) as (base, _):
        address = base.removeprefix("http://")
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script.replace(README_ADDRESS, address)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        queues = httpx.get(f"{base}/queues").json()["queues"]
        scraped = httpx.get(f"{base}{_scrape()['metrics_path']}")
    assert [q["paused"] for q in queues if q["name"] == "default"] == [False]  # resumed
    # The job the block submitted, fetched and listed; the page of metrics it grepped.
    assert '"work":"add"' in done.stdout
    assert "actorwork_job_run_seconds_count{" in done.stdout
    assert scraped.headers["content-type"].startswith("text/plain")
    assert "# TYPE actorwork_store_commit_duration_seconds histogram" in scraped.text


def _scrape() -> dict[str, Any]:
    config = yaml.safe_load(_block("test_the_scrape_config_names_the_apis_port_and_path").text)
    (scrape,) = config["scrape_configs"]
    assert isinstance(scrape, dict)
    return scrape


def test_the_scrape_config_names_the_apis_port_and_path() -> None:
    scrape = _scrape()
    assert scrape["metrics_path"] == "/metrics"
    assert scrape["static_configs"] == [{"targets": [DEFAULT_ADDRESS]}]
    assert README_ADDRESS == DEFAULT_ADDRESS
