"""What every fault test's driver does, wherever its Scheduler and Pools run.

:func:`eventually` waits for a condition (never a sleep-and-hope); :class:`Driver` is the
test's side of a cluster: a client connected to a Scheduler, the :class:`History` of what
it submitted and what ran, and the wait for the backlog to drain (I1, I6);
:func:`outbox_entries` reads a Pool's outbox without writing to it. The clusters of
``tests.jobs.test_faults`` (one host, SQLite) and ``tests.hosts`` (hosts in network
namespaces, PostgreSQL) both drive their processes through these.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from actorwork.client import Client
from actorwork.config import load_config
from actorwork.errors import ActorworkError
from actorwork.messages import TERMINAL, JobView
from actorwork.node import system_from_settings
from actorwork.pool._outbox_format import PUT, scan
from actorwork.stores import JobStore
from tests.jobs.history import History, Recorded
from tests.jobs.works import Step

DEADLINE = 60.0  # generous: a bound for liveness, never a measure of speed


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL ``proc``'s whole process group (it was started in a session of its own)
    and reap it; one that is gone already is only reaped."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


async def eventually(condition: Callable[[], Any], what: str, *, deadline: float = DEADLINE) -> Any:
    """Poll ``condition`` (sync or async) until it returns something truthy."""
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if hasattr(value, "__await__"):
            value = await value
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"gave up after {deadline:g} s waiting for {what}")
        await anyio.sleep(0.05)


def outbox_entries(outbox: Path) -> dict[str, bytes]:
    """The outbox's live entries, replayed from its segments without writing anything
    (the Pool may be running: a record it is still appending reads as damage and is
    skipped)."""
    live: dict[str, tuple[int, bytes]] = {}
    for path in sorted(outbox.glob("segment-*.log")):
        try:
            records, _ = scan(path.read_bytes())
        except FileNotFoundError:  # deleted since the listing
            continue
        for record in records:
            if record.kind == PUT:
                live.pop(record.key, None)
                live[record.key] = (record.seq, record.data)
            elif live.get(record.key, (None,))[0] == record.seq:
                del live[record.key]
    return {key: data for key, (_, data) in live.items()}


def in_outbox(outbox: Path, *job_ids: str) -> bool:
    """Every job's result is in one of the outbox's entries (persisted, unacknowledged)."""
    blobs = b"".join(outbox_entries(outbox).values())
    return all(job_id.encode() in blobs for job_id in job_ids)


@asynccontextmanager
async def connected(
    config: Path, address: str | None = None, *, deadline: float = DEADLINE
) -> AsyncIterator[Client]:
    """A client system (the settings of ``config``) connected to the Scheduler at
    ``address`` (by default the config's addresses: it follows their leader), once it
    answers."""
    settings = load_config(config)
    async with (
        system_from_settings(settings.system, name="test-client") as system,
        Client(system, address or settings.scheduler.addresses) as client,
    ):

        async def answers() -> bool:
            try:
                await client.list(limit=1)
            except (ActorworkError, OSError):
                client._ref = None
                return False
            return True

        await eventually(answers, "the scheduler to answer", deadline=deadline)
        yield client


def fired_jobs(logs: list[Path]) -> list[str]:
    """The job ids of every ``schedule_fired`` event the Schedulers' logs hold."""
    fired = []
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if "schedule_fired" in line:
                fired.append(line.split("job_id=")[1].split()[0])
    return fired


class Driver:
    """The test's side of a cluster: submits traced jobs, records them, waits for them.

    A subclass sets :attr:`history`; :meth:`connected_to` sets :attr:`client`.
    """

    history: History
    client: Client | None

    @asynccontextmanager
    async def connected_to(self, config: Path, address: str | None = None) -> AsyncIterator[Client]:
        """:func:`connected`, kept as :attr:`client` meanwhile."""
        async with connected(config, address) as client:
            self.client = client
            try:
                yield client
            finally:
                self.client = None

    async def submit(self, job_id: str, step: Step | None = None, **options: Any) -> str:
        """Submit a ``traced`` job, recording whether the Scheduler acknowledged it."""
        assert self.client is not None
        step = step or Step(history=str(self.history.path))
        self.history.submitted(job_id, acknowledged=False)
        handle = await self.client.submit("traced", step, job_id=job_id, **options)
        self.history.submitted(handle.id, acknowledged=True)
        return handle.id

    def step(self, **fields: Any) -> Step:
        """A :class:`Step` that records into this history."""
        return Step(history=str(self.history.path), **fields)

    async def collect_from(self, store: JobStore) -> History:
        """Read every recorded result of the submitted jobs from ``store`` (opened here,
        closed after) into the history."""
        await store.open()
        try:
            for job_id in self.history.submits:
                rows = await store.attempts(job_id)
                self.history.recorded[job_id] = [Recorded(*row) for row in rows]
        finally:
            await store.aclose()
        return self.history

    async def drained(self, *, deadline: float = DEADLINE) -> dict[str, JobView]:
        """Wait until every submitted job is terminal (I1, I6) and keep the final views."""
        assert self.client is not None
        client = self.client

        async def views() -> dict[str, JobView] | None:
            try:
                found = {job_id: await client.get(job_id) for job_id in self.history.submits}
            except (ActorworkError, OSError):  # the Scheduler is out of reach: ask again
                client._ref = None
                return None
            if all(view.status in TERMINAL for view in found.values()):
                return found
            return None

        final = await eventually(
            views, "every job to reach a terminal status (I1, I6)", deadline=deadline
        )
        listed = await client.list(status="running", limit=1000)
        assert not listed, f"I6: still running: {[v.id for v in listed]}"
        self.history.final = final
        return final
