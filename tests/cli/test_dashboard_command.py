"""``actorwork dashboard`` and ``actorwork demo --dashboard`` as real processes: each
prints the dashboard's URL, serves the page and the API there, and stops cleanly (exit
0, no traceback) on SIGINT and on SIGTERM.

Every wait below is a bound on a hang (a deadline of a minute), never a measurement.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.cli.test_lifecycle import Running
from tests.cli.test_lifecycle import _write_config as write_distributed_config
from tests.web.process import free_port, write_config

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 60.0

pytestmark = pytest.mark.slow


@contextmanager
def running(args: list[str], cwd: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """The process of ``actorwork *args`` and the URL it printed; killed if the test
    leaves it running."""
    process = subprocess.Popen(
        [sys.executable, "-m", "actorwork", *args],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout or ()])
    reader.start()
    try:
        deadline = time.monotonic() + DEADLINE
        url = ""
        while not url:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no URL printed: {process.poll()} {process.stderr}")
            if line.startswith("actorwork dashboard: "):
                url = line.split(": ", 1)[1].strip()
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=DEADLINE)
        reader.join(timeout=DEADLINE)


def _stop(process: subprocess.Popen[str], signum: int) -> str:
    process.send_signal(signum)
    _, err = process.communicate(timeout=DEADLINE)
    assert process.returncode == 0, err[-2000:]
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_dashboard_serves_the_page_and_the_api_and_stops_cleanly(
    tmp_path: Path, signum: int
) -> None:
    config = write_config(tmp_path, "tests.jobs.works")
    port = free_port()
    args = ["--config", str(config), "dashboard", "--address", f"127.0.0.1:{port}"]
    with running(args, ROOT) as (process, url):
        assert url == f"http://127.0.0.1:{port}/"
        page = httpx.get(url)
        assert page.status_code == 200
        assert "dashboard/app.js" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert httpx.get(f"{url}queues").status_code == 200
        err = _stop(process, signum)
    assert "pool_drained" in err  # the inline job system stopped in order


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_demo_with_the_dashboard_keeps_its_jobs_to_look_at(tmp_path: Path, signum: int) -> None:
    port = free_port()
    with running(["demo", "--dashboard", "--address", f"127.0.0.1:{port}"], tmp_path) as (
        process,
        url,
    ):
        assert httpx.get(url).status_code == 200
        dead = httpx.get(f"{url}dead").json()["jobs"]
        assert [job["work"] for job in dead] == ["demo.divide"]
        succeeded = httpx.get(f"{url}jobs", params={"status": "succeeded"}).json()["jobs"]
        assert {job["work"] for job in succeeded} == {"demo.invoice", "demo.flaky"}
        _stop(process, signum)


async def test_dashboard_reaches_a_distributed_scheduler(tmp_path: Path) -> None:
    """Against a Scheduler in a process of its own: the dashboard's API is its client."""
    config = write_distributed_config(tmp_path)
    scheduler = Running(config, "scheduler")
    try:
        await scheduler.ready("scheduler_listening")
        port = free_port()
        args = ["--config", str(config), "dashboard", "--address", f"127.0.0.1:{port}"]
        with running(args, ROOT) as (process, url):
            async with httpx.AsyncClient(base_url=url) as http:
                submitted = await http.post("jobs", json={"work": "noop"})
                assert submitted.status_code == 201
                job = (await http.get(f"jobs/{submitted.json()['job_id']}")).json()["job"]
                assert job["status"] == "queued"  # no pool runs here: the Scheduler holds it
                queues = (await http.get("queues")).json()["queues"]
                assert [queue["name"] for queue in queues] == ["default"]
                assert (await http.get("")).status_code == 200
            _stop(process, signal.SIGTERM)
    finally:
        scheduler.kill()
