"""``actorwork events`` in a process of its own tails a job's events from a Scheduler."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
from anyio.streams.text import TextReceiveStream

from actorwork import ActorSystem
from actorwork.cli.events import format_event, progress_bar
from actorwork.client import Client
from actorwork.events import JobLogged, JobProgress
from actorwork.messages import LogLine
from actorwork.scheduler.actor import Scheduler
from tests.jobs import works

ROOT = Path(__file__).resolve().parents[2]


async def test_events_follows_a_job_until_it_ends_in_a_subprocess(tmp_path: Path) -> None:
    address = f"unix://{tmp_path}/scheduler.sock"
    config = tmp_path / "app.toml"
    config.write_text(
        f'[jobs]\ntopology = "distributed"\nmodules = ["tests.jobs.works"]\n\n'
        f'[scheduler]\naddress = "{address}"\nstore = "{tmp_path}/jobs.db"\n'
    )
    scheduler = Scheduler(store=tmp_path / "jobs.db", modules=["tests.jobs.works"], tick=0.01)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    async with (
        ActorSystem("scheduler", listen=address) as server,
        ActorSystem("test") as system,
    ):
        await server.spawn(scheduler, name="scheduler")
        async with Client(system, address) as client:
            handle = await client.submit(works.noop, delay=3600)  # no pool: it waits
            command = [sys.executable, "-m", "actorwork", "--config", str(config)]
            command += ["events", "--job", handle.id]
            async with await anyio.open_process(command, cwd=tmp_path, env=env) as process:
                assert process.stderr is not None
                assert process.stdout is not None
                with anyio.fail_after(60):
                    errors = ""
                    async for text in TextReceiveStream(process.stderr):
                        errors += text
                        if "listening for events" in errors:
                            break
                    await client.cancel(handle.id, "no longer needed")
                    out = ""
                    async for text in TextReceiveStream(process.stdout):
                        out += text
                    code = await process.wait()
    assert code == 1, (out, errors)  # the job did not succeed
    [line] = out.splitlines()
    assert "job.cancelled" in line
    assert f"job={handle.id}" in line
    assert "reason=no longer needed" in line


def test_event_lines_show_progress_and_log_lines() -> None:
    assert progress_bar(0.5, "half", width=10) == "[#####.....]  50% half"
    assert progress_bar(None, "", width=3) == "[ ? ]"
    progress = JobProgress(seq=3, time=0.0, job_id="j", work="w", fraction=0.25, message="m")
    assert "job.progress" in format_event(progress)[0]
    assert "[" + "#" * 8 + "." * 22 + "]  25% m" in format_event(progress)[0]
    logged = JobLogged(job_id="j", lines=[LogLine(0.0, "stdout", "info", "hello")])
    assert format_event(logged)[1] == "    | stdout/info: hello"
