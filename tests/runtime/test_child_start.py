"""A child process slow to start on a loaded host still joins its parent.

A Pool of process workers starts its children at once; on a busy machine their Python
and imports took longer than the handshake deadline (5 s), the Pool exited with
"server did not complete the handshake", and F6 failed under load. The child's start
is bounded by :data:`CHILD_START_TIMEOUT` instead; a child that dies while starting is
still noticed at once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from actorwork import ActorSystem
from actorwork.errors import HandshakeError
from actorwork.messages import Ping, Pong
from actorwork.runtime import child as child_module

#: Longer than the system's handshake deadline in these tests.
SLOW_START = 1.5
DEADLINE = 0.5


def slow_python(tmp_path: Path, before: str) -> str:
    """A Python that runs the shell command ``before``, then the real interpreter."""
    script = tmp_path / "python"
    script.write_text(f'#!/bin/sh\n{before}\nexec {sys.executable} "$@"\n')
    script.chmod(0o755)
    return str(script)


@pytest.mark.usefixtures("no_leaks")
async def test_a_child_slower_to_start_than_the_handshake_deadline_joins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "executable", slow_python(tmp_path, f"sleep {SLOW_START}"))
    async with ActorSystem("parent", handshake_timeout=DEADLINE) as system:
        child = await system.spawn_child("kid")
        assert await child.ref("_system").ask(Ping(b"hi"), timeout=30) == Pong(b"hi")


@pytest.mark.usefixtures("no_leaks")
async def test_a_child_that_dies_while_starting_fails_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Were the longer bound waited out, this would take a minute and fail the timeout.
    assert child_module.CHILD_START_TIMEOUT > DEADLINE
    monkeypatch.setattr(sys, "executable", slow_python(tmp_path, "exit 3"))
    async with ActorSystem("parent", handshake_timeout=DEADLINE) as system:
        with pytest.raises(HandshakeError, match="peer closed the connection"):
            await system.spawn_child("kid")
