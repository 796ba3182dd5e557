"""Failover time: from the leading Scheduler's SIGKILL to the first result the new
leader commits, over several trials, on PostgreSQL.

Run from the repository root::

    .venv/bin/python bench/failover.py                      # 10 trials, a throwaway server
    .venv/bin/python bench/failover.py --trials 3 --markdown
    .venv/bin/python bench/failover.py --store postgresql://user@db/actorwork --lease 5

Three ``python -m actorwork scheduler`` processes share the store, each listening on a
``tcp://127.0.0.1`` port of its own (``[scheduler] listen``); one ``python -m actorwork
pool`` (a ``local`` Pool of 8) and this process's client are given all three addresses
and follow the leader. The client submits a no-op job every 50 ms throughout, so there
is always work for a new leader to hand out.

Each trial finds the leader in the store's ``leader`` row, SIGKILLs its process group
at wall time ``t``, and polls the store for the earliest ``updated`` time of a job that
succeeded after ``t``: only the new leader can have committed it. The failover time is
that minus ``t`` (one host, one wall clock). The killed Scheduler is started again and
waits in standby before the next trial. ``target`` is the issue's: ``leader_lease`` + 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from _table import format_table, host_line
from jobs import BENCH_DIR, MODULE, REPO, WORK, free_port, quiet_logs, stop, store_url, until_ready

from actorwork.client import Client
from actorwork.config import load_config
from actorwork.errors import ActorworkError
from actorwork.node import system_from_settings

SCHEDULERS = 3
POOL_SIZE = 8
SUBMIT_EVERY = 0.05  # seconds between the client's submits
POLL = 0.01  # seconds between looks at the store
TRIAL_DEADLINE = 120.0  # a failover slower than this is a failure, not a figure


def write_config(tmp: Path, addresses: list[str], store: str, lease: float) -> Path:
    path = tmp / "actorwork.toml"
    listed = ", ".join(f'"{a}"' for a in addresses)
    path.write_text(
        f"""
[jobs]
topology = "distributed"
modules = ["{MODULE}"]
connect_timeout = {TRIAL_DEADLINE}

[scheduler]
address = [{listed}]
store = "{store}"
leader_lease = {lease}

[pools.bench]
kind = "local"
size = {POOL_SIZE}
outbox = "{tmp / "outbox"}"
heartbeat = 0.5
"""
    )
    return path


class Fleet:
    """The Scheduler and Pool processes; each role's log in ``tmp``."""

    def __init__(self, tmp: Path, config: Path, addresses: list[str]) -> None:
        self.tmp = tmp
        self.config = config
        self.addresses = addresses
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str) -> None:
        path = os.pathsep.join(filter(None, [str(BENCH_DIR), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path}
        role = "pool" if name == "pool" else "scheduler"
        if role == "scheduler":
            env["ACTORWORK_SCHEDULER__LISTEN"] = self.addresses[int(name.rsplit("-", 1)[1])]
        command = [sys.executable, "-m", "actorwork", "--config", str(self.config)]
        with open(self.tmp / f"{name}.log", "ab") as log:
            self.procs[name] = subprocess.Popen(
                [*command, "--log-level", "info", role],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def scheduler_of(self, pid: int) -> str:
        return next(n for n, p in self.procs.items() if p.pid == pid and n != "pool")

    def stop(self) -> None:
        for proc in self.procs.values():
            stop(proc)


async def first_commit_after(db: Any, since: float) -> float:
    """The earliest ``updated`` of a job that succeeded after ``since`` (waited for)."""
    deadline = time.monotonic() + TRIAL_DEADLINE
    while time.monotonic() < deadline:
        found = await db.fetchval(
            "SELECT min(updated) FROM jobs WHERE status = 'succeeded' AND updated > $1", since
        )
        if found is not None:
            return float(found)
        await asyncio.sleep(POLL)
    raise RuntimeError(f"no result was committed within {TRIAL_DEADLINE:g} s of the kill")


async def until_logged(fleet: Fleet, name: str, event: str, count: int) -> None:
    """Wait until ``name``'s log holds ``event`` ``count`` times."""
    deadline = time.monotonic() + TRIAL_DEADLINE
    while fleet.log(name).count(event) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not log {event} within {TRIAL_DEADLINE:g} s")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def feeding(client: Client) -> AsyncIterator[None]:
    """Submit a job every :data:`SUBMIT_EVERY` seconds while inside."""

    async def feed() -> None:
        while True:
            with contextlib.suppress(ActorworkError):
                await client.submit(WORK)
            await asyncio.sleep(SUBMIT_EVERY)

    task = asyncio.ensure_future(feed())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def trials(store: str, n: int, lease: float) -> list[float]:
    import asyncpg

    with tempfile.TemporaryDirectory(prefix="aw-bench-failover-") as name:
        tmp = Path(name)
        addresses = [f"tcp://127.0.0.1:{free_port()}" for _ in range(SCHEDULERS)]
        config = write_config(tmp, addresses, store, lease)
        fleet = Fleet(tmp, config, addresses)
        db = await asyncpg.connect(store)
        try:
            for i in range(SCHEDULERS):
                fleet.start(f"scheduler-{i}")
            fleet.start("pool")
            settings = load_config(config, env={})
            async with (
                system_from_settings(settings.system, name="bench-client") as system,
                Client(system, settings.scheduler.address) as client,
            ):
                await until_ready(client, fleet.procs, tmp)
                async with feeding(client):
                    return [await trial(fleet, db, k) for k in range(n)]
        finally:
            await db.close()
            fleet.stop()


async def trial(fleet: Fleet, db: Any, k: int) -> float:
    """Kill the leader once; the seconds until the new leader committed a result."""
    holder = await db.fetchval("SELECT holder FROM leader WHERE id = 1")
    name = fleet.scheduler_of(int(holder.split(":")[1]))
    await until_logged(fleet, name, "scheduler_started", 1)
    for other in fleet.procs:  # the others wait in standby
        if other not in ("pool", name):
            await until_logged(fleet, other, "scheduler_standby", 1)
    killed = time.time()
    os.killpg(fleet.procs[name].pid, signal.SIGKILL)
    fleet.procs.pop(name).wait()
    took = await first_commit_after(db, killed) - killed
    print(f"trial {k + 1}: {took:.2f} s (killed {name})", file=sys.stderr)
    before = (fleet.tmp / f"{name}.log").read_text().count("scheduler_standby")
    fleet.start(name)
    await until_logged(fleet, name, "scheduler_standby", before + 1)
    return took


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10, help="leader kills (default 10)")
    parser.add_argument(
        "--lease", type=float, default=3.0, help="[scheduler] leader_lease (default 3)"
    )
    parser.add_argument(
        "--store", default="temporary", help="a postgresql:// URL ('temporary': a new server)"
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as markdown")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet_logs()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with store_url(args.store) as store:
            assert store is not None
            times = asyncio.run(trials(store, args.trials, args.lease))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    target = args.lease + 1.0
    p50, worst = statistics.median(times), max(times)
    print(host_line())
    print(
        f"{SCHEDULERS} Schedulers on PostgreSQL, leader_lease {args.lease:g} s; "
        f"{len(times)} trials of SIGKILL to the new leader's first committed result"
    )
    print()
    rows = [
        ["p50 s", f"{p50:.2f}", f"<= {target:g}", "yes" if p50 <= target else "no"],
        ["max s", f"{worst:.2f}", f"<= {target:g}", "yes" if worst <= target else "no"],
    ]
    columns = ["failover", "seconds", "target", "met"]
    print(format_table(columns, rows, [], numeric={1}, markdown=args.markdown))
    return 0


if __name__ == "__main__":
    sys.exit(main())
