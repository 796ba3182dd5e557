"""Works the job-system tests run; importable by child processes (``tests.jobs.works``)."""

from __future__ import annotations

import logging
import os
import signal
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


# --- works that record their executions (the fault tests' history) ----------------------


class Step(msgspec.Struct, kw_only=True):
    """What a traced execution does: run ``seconds`` (``block``: without check-ins), then
    ``then``: ``""`` return, ``"exit"`` os._exit(0), ``"die"`` SIGKILL its own process.
    ``history`` is the file each execution appends its start and end lines to;
    ``attempts`` limits all that to those attempts; the others return at once, or
    once the file ``gate`` exists if one is named."""

    history: str
    seconds: float = 0.0
    block: bool = False
    then: str = ""
    attempts: list[int] | None = None
    gate: str = ""


def record(path: str, event: str, job_id: str, attempt: int) -> None:
    """Append ``event job_id attempt pid`` to the history file, in one write."""
    line = f"{event} {job_id} {attempt} {os.getpid()}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def _stall(seconds: float) -> None:
    time.sleep(seconds)


@work(name="traced", retries=3)
async def traced(ctx: WorkContext, step: Step) -> str:
    record(step.history, "start", ctx.job_id, ctx.attempt)
    if step.attempts is not None and ctx.attempt not in step.attempts:
        while step.gate:
            if await anyio.Path(step.gate).exists():
                break
            await anyio.sleep(0.02)
        step = Step(history=step.history)
    if step.block:
        _stall(step.seconds)  # on the worker's loop: it cannot answer pings meanwhile
    else:
        deadline = time.monotonic() + step.seconds
        while time.monotonic() < deadline:
            if ctx.checkin():
                break
            await anyio.sleep(0.01)
    if step.then == "exit":
        os._exit(0)
    if step.then == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    stopped = ctx.checkin()
    record(step.history, "stopped" if stopped else "end", ctx.job_id, ctx.attempt)
    return f"{ctx.job_id}/{ctx.attempt}{' stopped' if stopped else ''}"


@work(name="note_run")
def note_run(ctx: WorkContext, path: str) -> None:
    """Append the job's id to ``path``: one line per execution."""
    with open(path, "a") as file:
        file.write(f"{ctx.job_id}\n")


# --- works that ignore a stop request or their timeout (F27) -----------------------------


class Hold(msgspec.Struct, kw_only=True):
    """What a stubborn execution does: append ``start``, then hold its worker without
    ever checking in, then append how it ended, to the history file (see ``record``).
    ``gate`` is a file whose appearance lets a sync hold return (an empty name: never);
    ``seconds`` is how long an async hold blocks its own loop (0: it awaits instead)."""

    history: str
    gate: str = ""
    seconds: float = 0.0


@work(name="hold_async", retries=0)
async def hold_async(ctx: WorkContext, hold: Hold) -> None:
    """Awaits for an hour without a check-in; its ``finally`` records ``finally``."""
    record(hold.history, "start", ctx.job_id, ctx.attempt)
    try:
        if hold.seconds:
            _stall(hold.seconds)  # on its own loop: only killing its process stops it
        await anyio.sleep(3600)
    finally:
        record(hold.history, "finally", ctx.job_id, ctx.attempt)


@work(name="hold_sync", retries=0)
def hold_sync(ctx: WorkContext, hold: Hold) -> None:
    """Runs in its thread until ``gate`` exists, never checking in; records ``end``."""
    record(hold.history, "start", ctx.job_id, ctx.attempt)
    while not (hold.gate and os.path.exists(hold.gate)):
        time.sleep(0.01)
    record(hold.history, "end", ctx.job_id, ctx.attempt)


@work(name="mark", retries=0)
def mark(ctx: WorkContext, history: str) -> int:
    """Records ``start`` (with its process id) and returns that id."""
    record(history, "start", ctx.job_id, ctx.attempt)
    return os.getpid()
