"""A peer that owes answers and goes silent is declared lost; one that is only slow is not.

A host that dies or is cut off sends no FIN, so its connections stay open and silent.
Here the peer is a real process: while it runs, its ``mute`` actor holds an ask for
ever but its system answers the link's probes, so the ask waits on; SIGSTOPped, it
answers nothing (as a dead host), and the ask fails with ConnectionBroken long before
its own timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from actorwork import ActorSystem
from actorwork.errors import ConnectionBroken
from actorwork.messages import Ping

from .test_peers import until

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def mute_peer(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A process running :mod:`tests.runtime.mute_peer`, and its address; killed after."""
    address = f"unix://{tmp_path / 'mute.sock'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.runtime.mute_peer", address],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        yield proc, address
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


async def test_a_silent_peer_that_answers_probes_keeps_the_ask_until_it_stops_answering(
    mute_peer: tuple[subprocess.Popen[str], str],
) -> None:
    proc, address = mute_peer
    async with ActorSystem("asker", liveness_timeout=0.4, ask_timeout=3600) as system:
        ref = await system.remote(address, "mute")
        link = await ref.link()
        failed: list[BaseException] = []

        async def ask() -> None:
            try:
                await ref.ask(Ping(b"never answered"))
            except ConnectionBroken as exc:
                failed.append(exc)

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask)
                # Alive: every probe is answered and the ask waits on, however long.
                await until(lambda: link.probes >= 3)
                assert not failed
                assert not link.closed
                os.kill(proc.pid, signal.SIGSTOP)  # silent from now on, as a dead host
        assert len(failed) == 1
        assert "liveness_timeout=0.4s" in str(failed[0])
        assert link.closed
