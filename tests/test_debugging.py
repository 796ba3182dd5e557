"""``breakpoint()`` in a work function, inline, on a real terminal (a pseudo-terminal).

The test types into pdb as a person would (``p``, ``n``, ``c``) and reads the screen:
the location, the values and the prompt reach the terminal, and the job still succeeds
with its own prints captured and none of the debugger's.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = """
import asyncio
import sys

import actorwork


@actorwork.work()
def sync_job(n: int) -> int:
    x = n * 7
    print("job says hello")
    breakpoint()
    y = x + 1
    return y


@actorwork.work()
async def async_job(n: int) -> int:
    x = n * 7
    print("job says hello")
    breakpoint()
    y = x + 1
    return y


async def main() -> None:
    work = {"sync": sync_job, "async": async_job}[sys.argv[1]]
    async with actorwork.JobSystem(actorwork.load_config(env={})) as jobs:
        handle = await jobs.submit(work, 3)
        value = await handle.result()
        view = await handle.wait()
    print("status:", view.status, "value:", value)
    for line in view.result.logs:
        print("captured:", line.source, repr(line.text))


asyncio.run(main())
"""


class Terminal:
    """A child process on a pseudo-terminal, read and typed into."""

    def __init__(self, command: list[str], cwd: Path) -> None:
        self.master, slave = pty.openpty()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "TERM": "dumb"}
        env.pop("PYTHONBREAKPOINT", None)
        self.proc = subprocess.Popen(
            command, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env
        )
        os.close(slave)
        self.screen = ""

    def read_until(self, text: str, timeout: float = 60.0) -> str:
        """Everything up to and including the next ``text``; fails with the screen so far."""
        start = len(self.screen)
        deadline = time.monotonic() + timeout
        while text not in self.screen[start:]:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.master], [], [], max(0.0, left))
            if not ready:
                pytest.fail(f"no {text!r} on the terminal; it shows:\n{self.screen}")
            try:
                chunk = os.read(self.master, 4096)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            if not chunk:
                if text in self.screen[start:]:
                    break
                pytest.fail(f"the program ended before {text!r}; it showed:\n{self.screen}")
            self.screen += chunk.decode(errors="replace").replace("\r\n", "\n")
        end = self.screen.index(text, start) + len(text)
        return self.screen[start:end]

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self.master)

    def finish(self) -> int:
        try:
            while True:
                ready, _, _ = select.select([self.master], [], [], 60)
                if not ready:
                    break
                chunk = os.read(self.master, 4096)
                if not chunk:
                    break
                self.screen += chunk.decode(errors="replace").replace("\r\n", "\n")
        except OSError:
            pass
        os.close(self.master)
        return self.proc.wait(timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_breakpoint_in_a_job_is_a_usable_pdb_session(tmp_path: Path, kind: str) -> None:
    script = tmp_path / "debug_me.py"
    script.write_text(SCRIPT)
    terminal = Terminal([sys.executable, str(script), kind], tmp_path)
    try:
        shown = terminal.read_until("(Pdb) ")
        assert "debug_me.py(" in shown  # where it stopped: the file, the function
        assert f"{kind}_job()" in shown
        assert "-> y = x + 1" in shown
        terminal.type("p x")
        assert "21" in terminal.read_until("(Pdb) ")
        terminal.type("where")
        assert f"{kind}_job()" in terminal.read_until("(Pdb) ")
        terminal.type("n")
        assert "-> return y" in terminal.read_until("(Pdb) ")
        terminal.type("p y")
        assert "22" in terminal.read_until("(Pdb) ")
        terminal.type("c")
        terminal.read_until("status:")
    except BaseException:
        terminal.kill()
        raise
    status = terminal.finish()
    screen = terminal.screen
    assert status == 0, screen
    assert "status: succeeded value: 22" in screen
    captured = [line for line in screen.splitlines() if line.startswith("captured:")]
    assert "captured: stdout 'job says hello'" in captured
    # Nothing of the debugger's went into the job: its location, values and prompt.
    assert not [line for line in captured if "debug_me.py" in line or "Pdb" in line], captured
    assert not [line for line in captured if "'21'" in line or "'22'" in line], captured
