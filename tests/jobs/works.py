"""Works the job-system tests run; importable by child processes (``tests.jobs.works``)."""

from __future__ import annotations

import logging
import os
import sys
import time

import anyio
import msgspec

from actorwork import WorkContext, WorkFailed, work

log = logging.getLogger(__name__)


class Pair(msgspec.Struct):
    x: int
    y: int


@work(name="add")
def add(pair: Pair) -> int:
    return pair.x + pair.y


@work(name="echo")
async def echo(ctx: WorkContext, text: str) -> str:
    ctx.log.info("echoing", text=text)
    print(f"printed {text}")
    log.warning("logged %s", text)
    ctx.progress(0.5, "half way")
    return text


@work(name="noop")
async def noop() -> None:
    return None


@work(name="boom", retries=2)
def boom(text: str) -> None:
    raise ValueError(f"boom {text}")


@work(name="refuse", retries=5)
def refuse() -> None:
    raise WorkFailed("not today")


@work(name="sleep")
async def sleep(ctx: WorkContext, seconds: float) -> float:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ctx.checkin():
            return -1.0
        await anyio.sleep(0.01)
    return seconds


@work(name="block")
def block(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@work(name="exit", retries=1)
def exit_now(code: int) -> None:
    sys.stdout.flush()
    os._exit(code)


@work(name="artifact")
def artifact(ctx: WorkContext, name: str) -> int:
    data = f"%PDF-fake {name}".encode()
    ctx.add_artifact(name, data, media_type="application/pdf")
    return len(data)
