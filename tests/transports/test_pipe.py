"""pipe://: child processes that host an actor system, and die with their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest

from actorwork import ActorStopped, ActorSystem, Terminated
from actorwork.messages import Ping, Pong
from actorwork.runtime.actor import Actor


class Collector(Actor):
    def __init__(self) -> None:
        self.terminated: list[Terminated] = []
        self.event = anyio.Event()

    async def receive(self, message: Terminated) -> None:
        self.terminated.append(message)
        self.event.set()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by a dead parent's init) counts as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.usefixtures("no_leaks")
async def test_child_actor_answers_and_its_death_is_seen() -> None:
    async with ActorSystem("parent") as system:
        child = await system.spawn_child("kid")
        echo = child.ref("_system")
        assert await echo.ask(Ping(b"hi"), timeout=30) == Pong(b"hi")
        collector = Collector()
        watcher = await system.spawn(collector, name="collector")
        system.watch(echo, watcher)
        child.kill()
        with pytest.raises(ActorStopped):
            await echo.ask(Ping(b"again"), timeout=30)
        with anyio.fail_after(30):
            await collector.event.wait()
        assert collector.terminated[0].name == "_system"
        assert await child.wait() == -signal.SIGKILL
        await child.aclose()


@pytest.mark.usefixtures("no_leaks")
async def test_closing_the_system_stops_its_children() -> None:
    async with ActorSystem("parent") as system:
        child = await system.spawn_child("kid")
        pid = child.pid
        assert await child.ref("_system").ask(Ping(), timeout=30) == Pong()
    assert child.returncode == 0  # exited by itself on EOF, not killed
    assert not pid_alive(pid)


async def test_spawn_in_child_of_unknown_factory_names_it() -> None:
    async with ActorSystem("parent") as system:
        child = await system.spawn_child("kid")
        with pytest.raises(Exception, match=r"no\.such\.module:Thing"):
            await child.spawn("no.such.module:Thing", name="thing", timeout=30)
        assert await child.ref("_system").ask(Ping(), timeout=30) == Pong()


def test_child_dies_with_its_parent(tmp_path: Path) -> None:
    """SIGKILL the parent: the OS kills the child too (and EOF would end it anyway)."""
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, anyio
            from actorwork import ActorSystem
            from actorwork.cli.main import configure_logging

            configure_logging("warning")

            async def main():
                async with ActorSystem("parent") as system:
                    child = await system.spawn_child("kid")
                    print(child.pid, flush=True)
                    await anyio.sleep_forever()

            anyio.run(main)
            """
        )
    )
    parent = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=os.environ.copy()
    )
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        assert pid_alive(child_pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 30  # a hang guard, not a speed requirement
        while pid_alive(child_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pid_alive(child_pid)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if parent.stdout is not None:
            parent.stdout.close()
