"""No stray Chromium processes or containers after renders that finish, fail or time out.

Local browsers are counted by the profile directory every process of theirs carries
on its command line; containers by the label with this process's pid. A kept browser
is one browser (one profile, one container) however many jobs ran; stopping the
browsers leaves none.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from pathlib import Path

import anyio
import pytest

from actorwork import JobSystem
from actorwork.chromium import PROFILE_PREFIX, Chromium, PdfRequest, browsers
from actorwork.config import ChromiumSettings
from tests.chromium.conftest import (
    OpenJobs,
    chromium_browsers,
    chromium_containers,
    chromium_processes,
)

READY = "<!doctype html><p>ready {i}</p><script>window.actorworkReady()</script>"
SILENT = "<!doctype html><p>silent {i}</p>"


async def _run_mix(jobs: JobSystem, count: int) -> dict[str, int]:
    """``count`` renders: most succeed, a tenth fail (not ready), a tenth time out."""
    handles = []
    for i in range(count):
        if i % 10 == 3:  # the page never signals: PageNotReady, no retry
            request = PdfRequest(html=SILENT.format(i=i), wait_for_ready=True, ready_timeout=0.2)
            handles.append(await jobs.submit("chromium.pdf", request))
        elif i % 10 == 7:  # the job's timeout ends it while it waits for the page
            request = PdfRequest(html=SILENT.format(i=i), wait_for_ready=True, ready_timeout=60)
            handles.append(await jobs.submit("chromium.pdf", request, timeout=0.5, retries=0))
        else:
            request = PdfRequest(html=READY.format(i=i), wait_for_ready=True)
            handles.append(await jobs.submit("chromium.pdf", request))
    outcomes: dict[str, int] = {}
    for handle in handles:
        view = await handle.wait(timeout=300)
        key = view.result.outcome if view.result is not None else view.status
        outcomes[key] = outcomes.get(key, 0) + 1
    return outcomes


def _expected(count: int) -> dict[str, int]:
    tenth = sum(1 for i in range(count) if i % 10 == 3)
    timed_out = sum(1 for i in range(count) if i % 10 == 7)
    return {"succeeded": count - tenth - timed_out, "failed": tenth, "timeout": timed_out}


async def _running(settings: ChromiumSettings) -> int:
    """Browsers of ``settings.mode`` this process runs, waiting for stopping ones to go."""
    count = _count(settings)
    with anyio.move_on_after(15):
        while count:
            await anyio.sleep(0.1)
            count = _count(settings)
    return count


def _count(settings: ChromiumSettings) -> int:
    """Browsers this process launched (other runs on the machine may have their own)."""
    if settings.mode == "local":
        return len(chromium_browsers(os.getpid()))
    return len(chromium_containers())


def _profiles() -> list[Path]:
    return _files_of(os.getpid())


@pytest.mark.slow
@pytest.mark.timeout(600)  # 100 renders on 2 shared cores; a hang still ends
async def test_no_stray_browser_after_100_renders(
    open_jobs: OpenJobs, settings: ChromiumSettings
) -> None:
    assert await _running(settings) == 0
    profiles_before = _profiles()
    async with open_jobs(keep=True) as jobs:
        assert await _run_mix(jobs, 100) == _expected(100)
        # One kept browser served every job, and no render left its context open.
        assert _count(settings) == 1
        assert browsers().running == 1
        assert await browsers().open_contexts() == 0
    assert await _running(settings) == 0
    assert _profiles() == profiles_before


async def test_without_keep_each_browser_stops_when_its_jobs_end(
    open_jobs: OpenJobs, settings: ChromiumSettings
) -> None:
    async with open_jobs(keep=False) as jobs:
        assert await _run_mix(jobs, 10) == _expected(10)
        assert browsers().running == 0
        assert await _running(settings) == 0


async def test_a_browser_that_died_is_started_again_for_the_next_job(
    open_jobs: OpenJobs, settings: ChromiumSettings
) -> None:
    async with open_jobs(keep=True) as jobs:
        assert await _run_mix(jobs, 1) == {"succeeded": 1}
        [chromium] = [c for c in browsers()._slots if c is not None]
        chromium.launcher.kill_now()  # a crash, or `docker rm -f`
        assert await _running(settings) == 0
        assert await _run_mix(jobs, 2) == {"succeeded": 2}
        assert _count(settings) == 1
    assert await _running(settings) == 0


KILLED = """
import os, sys, anyio
from actorwork.chromium import Chromium, ChromiumSettings

async def main():
    await Chromium(ChromiumSettings(mode=sys.argv[1], image=sys.argv[2])).start()
    print(os.getpid(), flush=True)
    os.kill(os.getpid(), 9)

anyio.run(main)
"""


async def test_a_sigkilled_process_leaves_no_browser_and_its_files_are_swept(
    settings: ChromiumSettings,
) -> None:
    done = await anyio.run_process(
        [sys.executable, "-c", KILLED, settings.mode, settings.image], check=False
    )
    assert done.returncode == -signal.SIGKILL
    assert done.stdout.strip().isdigit(), done.stderr
    pid = int(done.stdout)
    # The browser goes with its process: local Chromium by PR_SET_PDEATHSIG, the
    # container when the pipe to its command closes.
    left = _left_by(pid, settings)
    with anyio.move_on_after(30):
        while left:
            await anyio.sleep(0.1)
            left = _left_by(pid, settings)
    assert left == []
    # Its profile or log stayed (nothing runs at SIGKILL); the next launch sweeps it.
    assert _files_of(pid)
    async with Chromium(settings):
        assert _files_of(pid) == []


def _files_of(pid: int) -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob(f"{PROFILE_PREFIX}{pid}-*"))


def _left_by(pid: int, settings: ChromiumSettings) -> list[str]:
    if settings.mode == "local":
        return [str(p) for p in chromium_processes() if f"{PROFILE_PREFIX}{pid}-" in _cmdline(p)]
    return chromium_containers(pid)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
