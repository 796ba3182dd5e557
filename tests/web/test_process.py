"""A real ``actorwork api`` process: answers over loopback, refuses to start off it
without a token, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "actorwork.toml"
    path.write_text(
        f"""
[jobs]
topology = "inline"
modules = ["tests.jobs.works"]
[scheduler]
store = "{tmp_path / "jobs.db"}"
[pools.default]
outbox = "{tmp_path / "outbox"}"
"""
    )
    return path


def _run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "actorwork", "--config", str(_config(tmp_path)), "api", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_real_api_process_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    process = _run(tmp_path, "--address", f"127.0.0.1:{port}")
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                reply = httpx.get(f"{base}/queues")
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the API never answered"
                time.sleep(0.1)
        assert reply.status_code == 200
        submitted = httpx.post(f"{base}/jobs", json={"work": "noop"})
        assert submitted.status_code == 201
        job_id = submitted.json()["job_id"]
        for _ in range(300):
            job = httpx.get(f"{base}/jobs/{job_id}").json()["job"]
            if job["status"] == "succeeded":
                break
            time.sleep(0.05)
        assert job["status"] == "succeeded"
        assert "actorwork_jobs_finished_total" in httpx.get(f"{base}/metrics").text
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    # uvicorn shuts down, then ends with the signal it caught, as a process killed by it.
    assert process.returncode in (0, -signal.SIGTERM), err
    assert "pool_drained" in err
    assert "Traceback" not in err


def test_off_loopback_without_a_token_it_refuses_to_start(tmp_path: Path) -> None:
    process = _run(
        tmp_path, "--address", f"0.0.0.0:{_free_port()}", env={"ACTORWORK_API_TOKEN": ""}
    )
    _, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert "'0.0.0.0:" in err
    assert "token" in err
