"""A real ``actorwork api`` process on an inline job system, for the tests that need one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(directory: Path, module: str) -> Path:
    path = directory / "actorwork.toml"
    path.write_text(
        f"""
[jobs]
topology = "inline"
modules = ["{module}"]
[scheduler]
store = "{directory / "jobs.db"}"
[pools.default]
outbox = "{directory / "outbox"}"
"""
    )
    return path


def start(
    directory: Path, *args: str, module: str = "tests.jobs.works", env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """``actorwork api`` with ``args``, on a config in ``directory`` importing ``module``."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "actorwork",
            "--config",
            str(write_config(directory, module)),
            "api",
            *args,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@contextmanager
def serving(directory: Path, module: str = "tests.jobs.works") -> Iterator[tuple[str, list[str]]]:
    """The base URL of a running API; after the block, its stderr in the list, once it
    stopped on SIGTERM."""
    port = free_port()
    process = start(directory, "--address", f"127.0.0.1:{port}", module=module)
    base, logs = f"http://127.0.0.1:{port}", []
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{base}/queues")
                break
            except httpx.TransportError:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the API never answered"
                time.sleep(0.1)
        yield base, logs
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
        logs.append(err)
        # uvicorn shuts down, then ends with the signal it caught, as if killed by it.
        assert process.returncode in (0, -signal.SIGTERM), err
