"""Deadlines: one timer times out many asks, whatever order their deadlines come in."""

from __future__ import annotations

import asyncio

import anyio
import pytest

from actorwork.errors import AskTimeout
from actorwork.runtime.ref import Deadlines


async def test_each_unanswered_future_times_out_and_answered_ones_are_left_alone() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)
    late, early, answered = loop.create_future(), loop.create_future(), loop.create_future()
    deadlines.add(late, 0.2, "late")
    deadlines.add(early, 0.01, "early")  # earlier than the armed timer: it must re-arm
    deadlines.add(answered, 0.01, "answered")
    answered.set_result("reply")
    with anyio.fail_after(5):
        with pytest.raises(AskTimeout, match="'early'"):
            await early
        assert not late.done()
        with pytest.raises(AskTimeout, match=r"'late' within 0\.2s"):
            await late
    assert answered.result() == "reply"


async def test_answered_asks_do_not_pile_up() -> None:
    loop = asyncio.get_running_loop()
    deadlines = Deadlines(loop)
    for _ in range(10_000):
        future = loop.create_future()
        deadlines.add(future, 30.0, "actor")
        future.set_result(None)
    assert len(deadlines._heap) <= 2048  # the bound is the point of the sweep
