"""Fixtures of the Chromium tests: a real browser, local or in its container.

``mode`` runs a test with Debian's ``chromium`` launched locally and with the
Chromium image in a container. What is missing is made first: Chromium is installed
with ``scripts/install-chromium.sh``, the image built with
``scripts/build-chromium-image.sh`` (which builds the Debian base first). A test
skips, saying why, only when no Docker Engine answers (docker) or Chromium cannot be
installed (local).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from actorwork import JobSystem
from actorwork.chromium import CONTAINER_LABEL, PROFILE_PREFIX, close_browsers, configure
from actorwork.config import ChromiumSettings, load_config

REPO = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("ACTORWORK_CHROMIUM_IMAGE", "actorwork/chromium:bookworm")
MODES = ("local", "docker")

OpenJobs = Callable[..., Any]


def _run(*argv: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def local_chromium() -> str:
    """Debian's chromium on PATH, installed if missing; skips if it cannot be."""
    if shutil.which("chromium") is None:
        done = _run(str(REPO / "scripts" / "install-chromium.sh"))
        if done.returncode != 0 or shutil.which("chromium") is None:
            pytest.skip(f"chromium cannot be installed: {(done.stderr or done.stdout)[-300:]}")
    return "chromium"


@pytest.fixture(scope="session")
def chromium_image() -> str:
    """The Chromium image, built if missing; skips when no Docker Engine answers."""
    if shutil.which("docker") is None:
        pytest.skip("no Docker Engine: the docker CLI is not installed")
    info = _run("docker", "info", "--format", "{{.ServerVersion}}", timeout=30)
    if info.returncode != 0:
        pytest.skip(f"no Docker Engine answers: {info.stderr.strip()[-300:]}")
    if _run("docker", "image", "inspect", IMAGE, timeout=30).returncode != 0:
        built = _run(str(REPO / "scripts" / "build-chromium-image.sh"), "--tag", IMAGE)
        assert built.returncode == 0, f"building {IMAGE} failed:\n{built.stderr[-2000:]}"
    return IMAGE


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def settings(mode: str, request: pytest.FixtureRequest) -> ChromiumSettings:
    """Settings for ``mode``, with its browser or image made available."""
    if mode == "local":
        return ChromiumSettings(mode="local", executable=request.getfixturevalue("local_chromium"))
    return ChromiumSettings(mode="docker", image=request.getfixturevalue("chromium_image"))


@pytest.fixture
def open_jobs(tmp_path: Path, settings: ChromiumSettings) -> OpenJobs:
    """Factory: ``async with open_jobs(**chromium) as jobs`` is an inline job system
    whose works use Chromium per ``settings`` (fields overridden by ``chromium``).
    Its browsers are closed when it ends."""

    @asynccontextmanager
    async def open_(**chromium: Any) -> AsyncIterator[JobSystem]:
        path = tmp_path / "actorwork.toml"
        path.write_text(_config_text(tmp_path))
        config = load_config(path, env={})
        configure(ChromiumSettings(**{**_fields(settings), **chromium}))
        try:
            async with JobSystem(config) as jobs:
                yield jobs
        finally:
            await close_browsers()
            configure(None)

    return open_


def _fields(settings: ChromiumSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__struct_fields__}


def _config_text(tmp_path: Path) -> str:
    return f"""
[jobs]
topology = "inline"
modules = ["actorwork.chromium"]

[scheduler]
address = "inproc://chromium-{tmp_path.name}"
store = "{tmp_path}/jobs.db"
lease = 30.0
retry_base = 0.01
retry_cap = 0.05

[pools.main]
kind = "local"
size = 2
outbox = "{tmp_path}/outbox"
"""


def chromium_processes() -> list[int]:
    """Pids of the Chromium processes (of every kind) our local launchers started."""
    marker = f"--user-data-dir={Path(tempfile.gettempdir(), PROFILE_PREFIX)}"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry))
    return found


def chromium_browsers(owner: int | None = None) -> set[str]:
    """The profile directories of the local browsers running: one per browser; with
    ``owner``, only those launched by that process (other test runs on the machine may
    run browsers of their own)."""
    mine = f"--user-data-dir={Path(tempfile.gettempdir(), PROFILE_PREFIX)}{owner}-"
    profiles = set()
    for pid in chromium_processes():
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        profiles |= {
            a.decode()
            for a in args
            if a.startswith(b"--user-data-dir=") and (owner is None or a.startswith(mine.encode()))
        }
    return profiles


def chromium_containers(pid: int | None = None) -> list[str]:
    """Names of the containers (running or not) the launchers of process ``pid`` (this
    one by default) started."""
    listed = _run(
        "docker",
        *("ps", "--all", "--format", "{{.Names}}"),
        *("--filter", f"label={CONTAINER_LABEL}.pid={pid or os.getpid()}"),
        timeout=30,
    )
    return listed.stdout.split()
