"""examples/web as written: ``serve.py`` runs, and in Chromium a click on its page
submits the job, whose progress bar reaches 100% and whose log lines show."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import anyio
from anyio.streams.text import TextReceiveStream

from actorwork.testing.web import chromium_page
from tests.web.process import free_port

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "web"
ROOT = EXAMPLE.parents[1]


def test_the_page_is_under_40_lines_of_the_users_own_code() -> None:
    lines = [line for line in (EXAMPLE / "index.html").read_text().splitlines() if line.strip()]
    assert len(lines) < 40


async def test_a_click_runs_the_job_and_its_progress_bar_and_logs_show_live(
    tmp_path: Path, local_chromium: str
) -> None:
    port = free_port()
    server = await anyio.open_process(
        [sys.executable, str(EXAMPLE / "serve.py"), str(port)],
        cwd=tmp_path,  # the store goes under ./.actorwork/ here
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
    )
    async with server:
        try:
            assert server.stderr is not None
            said = ""
            with anyio.fail_after(60):  # uvicorn says so once it listens
                async for text in TextReceiveStream(server.stderr):
                    said += text
                    if "Uvicorn running on" in said:
                        break
            assert "Uvicorn running on" in said, said
            async with chromium_page() as page:
                await page.goto(f"http://127.0.0.1:{port}/")
                await page.click("#start")
                done = "document.getElementById('status').textContent === 'succeeded'"
                await page.waitForFunction(done, {"timeout": 60_000})
                bar = await page.evaluate("document.getElementById('bar').value")
                logs = await page.evaluate("document.getElementById('logs').textContent")
        finally:
            server.send_signal(signal.SIGINT)
    assert bar == 1
    assert logs.splitlines() == [f"row {row} of 5 done" for row in range(1, 6)]
