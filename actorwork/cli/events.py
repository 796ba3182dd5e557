"""``actorwork events``: tail the Scheduler's events in the terminal, one line each.

With ``--job`` it follows one job until it ends (exit status 0 if it succeeded, 1 if
not), drawing its progress as a bar that rewrites its own line when the output is a
terminal; otherwise it runs until interrupted. The Scheduler is the configured one:
``[scheduler] address`` of a distributed config, or the inline system's own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import TextIO

from actorwork.config import Config
from actorwork.events import (
    ArtifactAdded,
    Event,
    EventsLost,
    JobLogged,
    JobProgress,
)
from actorwork.messages import TERMINAL
from actorwork.topology import JobSystem

__all__ = ["events_command", "format_event", "progress_bar"]

_BAR = 30


def progress_bar(fraction: float | None, message: str, width: int = _BAR) -> str:
    """``[#######.......]  25% message``; an unknown fraction shows as ``[?]``."""
    if fraction is None:
        return f"[{'?':^{width}}]      {message}".rstrip()
    filled = round(fraction * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {fraction:4.0%} {message}".rstrip()


def format_event(event: Event) -> list[str]:
    """The lines that show ``event``: a head line, then one per log line it carries."""
    kind = type(event).__struct_config__.tag
    when = dt.datetime.fromtimestamp(event.time, dt.UTC).strftime("%H:%M:%S")
    parts = [f"{when} #{event.seq:<6} {kind:<15}"]
    if isinstance(event, EventsLost):
        return [f"{parts[0]} {event.count} events lost: this terminal fell behind"]
    if event.job_id:
        parts.append(f"job={event.job_id} work={event.work} status={event.status}")
    for name in ("attempt", "pool", "worker", "schedule", "error", "reason"):
        value = getattr(event, name, None)
        if value:
            parts.append(f"{name}={value}")
    if isinstance(event, JobProgress):
        parts.append(progress_bar(event.fraction, event.message))
    if isinstance(event, ArtifactAdded):
        parts.append(f"artifact={event.name}")
    lines = [" ".join(parts)]
    if isinstance(event, JobLogged):
        lines += [f"    | {line.source}/{line.level}: {line.text}" for line in event.lines]
    return lines


async def events_command(args: argparse.Namespace, config: Config) -> int:
    """Print events as they come; with ``--job``, until that job ends."""
    out: TextIO = sys.stdout
    live_bar = args.job is not None and out.isatty()
    async with JobSystem(config, pools=False) as jobs:
        assert jobs.client is not None
        stream = jobs.client.events(job_id=args.job, work=args.work, queue=args.queue)
        async with stream:
            if args.job is not None:
                view = await jobs.client.get(args.job)  # JobNotFound if there is none
                if view.status in TERMINAL:
                    print(f"job {args.job} is already {view.status}")
                    return 0 if view.status == "succeeded" else 1
            print(f"listening for events (after #{stream.start_seq})", file=sys.stderr)
            sys.stderr.flush()
            async for event in stream:
                if live_bar and isinstance(event, JobProgress):
                    bar = progress_bar(event.fraction, event.message)
                    out.write(f"\r{bar}")
                    out.flush()
                    continue
                if live_bar:
                    out.write("\r\033[K")
                for line in format_event(event):
                    print(line, file=out)
                out.flush()
                if args.job is not None and event.job_id == args.job and event.status in TERMINAL:
                    return 0 if event.status == "succeeded" else 1
    return 0
