"""Cron schedules run by the Scheduler: jobs per fire time, restarts, clock jumps,
changes from a client, and several Schedulers on one store (I7, F17, F18).

The wall clock the schedules follow is injected and moved by the tests; the
Scheduler's own tick (every 10 ms) and the monotonic clock are real, so a test
waits for what it expects with :func:`eventually` rather than sleeping.
"""

from __future__ import annotations

import itertools
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from actorwork import ActorSystem, Client, ScheduleError, ScheduleNotFound, schedule
from actorwork.errors import LeadershipLost, StoreError
from actorwork.scheduler.actor import Scheduler
from actorwork.scheduler.cron_state import parse_unique_key
from actorwork.scheduler.leadership import holder_name, lead
from actorwork.scheduler.state import Now, SetFence
from actorwork.schedules import Schedule
from actorwork.stores.sqlite import SQLiteStore
from tests.jobs.harness import eventually, fired_jobs

START = datetime(2026, 3, 27, 4, 59, 30, tzinfo=UTC).timestamp()  # a Friday


@dataclass
class WallClock:
    """The wall clock of the test; monotonic time stays real (leases, ticks)."""

    wall: float = START

    def now(self) -> Now:
        return Now(time.monotonic(), self.wall)


EVERY_MINUTE = schedule("minutely", "noop", "* * * * *")


def cron_jobs(store: Path) -> list[str]:
    """The ids of the cron jobs in the store, in fire-time order."""
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT id FROM jobs WHERE id LIKE 'cron:%' ORDER BY id").fetchall()
    return [row[0] for row in rows]


@asynccontextmanager
async def running(
    store: Path, clock: WallClock, schedules: list[Schedule] | None = None
) -> AsyncIterator[tuple[Scheduler, Client]]:
    """A Scheduler (no pool: cron jobs stay queued) and a client of it."""
    scheduler = Scheduler(
        store=store,
        modules=["tests.jobs.works"],
        tick=0.01,
        clock=clock.now,
        schedules=schedules if schedules is not None else [EVERY_MINUTE],
        leader_lease=2.0,
    )
    async with ActorSystem("cron") as system:
        ref = await system.spawn(scheduler, name="scheduler")
        async with Client(system, ref) as client:
            yield scheduler, client


async def test_a_schedule_fires_one_job_per_fire_time(tmp_path: Path) -> None:
    store, clock = tmp_path / "jobs.db", WallClock()
    async with running(store, clock):
        clock.wall = START + 31  # 05:00:01
        await eventually(lambda: cron_jobs(store), "the 05:00 job")
        clock.wall = START + 91  # 05:01:01
        await eventually(lambda: len(cron_jobs(store)) == 2, "the 05:01 job")
    assert cron_jobs(store) == [
        "cron:minutely:2026-03-27T05:00:00Z",
        "cron:minutely:2026-03-27T05:01:00Z",
    ]


async def test_a_restart_does_not_fire_a_time_again_and_run_once_catches_up(
    tmp_path: Path,
) -> None:
    store, clock = tmp_path / "jobs.db", WallClock()
    async with running(store, clock):
        clock.wall = START + 31
        await eventually(lambda: cron_jobs(store), "the 05:00 job")
    async with running(store, clock):  # 05:00 is behind the stored fence now
        clock.wall = START + 91
        await eventually(lambda: len(cron_jobs(store)) >= 2, "the 05:01 job")
    assert cron_jobs(store) == [
        "cron:minutely:2026-03-27T05:00:00Z",
        "cron:minutely:2026-03-27T05:01:00Z",
    ]
    # Down for minutes: the default (run_once) runs the latest missed time once.
    clock.wall = START + 30 + 6 * 60 + 30  # 05:06:30; 05:02 to 05:06 passed unseen
    async with running(store, clock):
        await eventually(lambda: len(cron_jobs(store)) >= 3, "the catch-up job")
    assert cron_jobs(store)[2:] == ["cron:minutely:2026-03-27T05:06:00Z"]


async def test_the_wall_clock_jumping_an_hour_neither_doubles_nor_skips(tmp_path: Path) -> None:
    """F18: the fence, not the clock, says which fire times are decided."""
    store, clock = tmp_path / "jobs.db", WallClock()
    async with running(store, clock):
        clock.wall = START + 31
        await eventually(lambda: cron_jobs(store), "the 05:00 job")
        clock.wall -= 3600  # back to 04:00:01: 04:01 to 05:00 come again, all decided
        clock.wall = START + 91
        await eventually(lambda: len(cron_jobs(store)) >= 2, "the 05:01 job")
        assert cron_jobs(store) == [
            "cron:minutely:2026-03-27T05:00:00Z",
            "cron:minutely:2026-03-27T05:01:00Z",
        ]
        clock.wall += 3600  # forward an hour: run_once runs the latest missed time
        await eventually(lambda: len(cron_jobs(store)) >= 3, "the job after the jump")
    assert cron_jobs(store)[2:] == ["cron:minutely:2026-03-27T06:01:00Z"]


async def test_schedules_are_added_changed_and_removed_from_a_client(tmp_path: Path) -> None:
    store, clock = tmp_path / "jobs.db", WallClock()
    async with running(store, clock, schedules=[]) as (_, client):
        report = schedule(
            "report", "add", "0 5 * * 1-5", payload={"x": 1, "y": 2}, timezone="Europe/London"
        )
        view = await client.add_schedule(report)
        assert view.source == "api"
        # 05:00 London is 05:00 UTC until the clocks go forward on Sunday 29 March.
        assert [datetime.fromtimestamp(t, UTC).isoformat() for t in view.next_fires] == [
            "2026-03-27T05:00:00+00:00",  # Friday, GMT
            "2026-03-30T04:00:00+00:00",  # Monday, BST
            "2026-03-31T04:00:00+00:00",
        ]
        assert not (await client.enable_schedule("report", False)).schedule.enabled
        assert [v.schedule.name for v in await client.schedules()] == ["report"]
        with pytest.raises(ScheduleError, match=r"unknown work 'nope'"):
            await client.add_schedule(schedule("bad", "nope", "* * * * *"))
        await client.remove_schedule("report")
        with pytest.raises(ScheduleNotFound, match="report"):
            await client.remove_schedule("report")
        assert await client.schedules() == []
    async with running(store, clock, schedules=[]) as (_, client):
        assert await client.schedules() == []  # the removal was stored


async def test_a_schedule_added_by_a_client_survives_a_restart(tmp_path: Path) -> None:
    store, clock = tmp_path / "jobs.db", WallClock()
    async with running(store, clock, schedules=[]) as (_, client):
        await client.add_schedule(schedule("kept", "noop", "*/5 * * * *"))
    async with running(store, clock, schedules=[]) as (_, client):
        assert [v.schedule.name for v in await client.schedules()] == ["kept"]
        clock.wall = START + 31
        await eventually(lambda: cron_jobs(store), "the 05:00 job")
    assert cron_jobs(store) == ["cron:kept:2026-03-27T05:00:00Z"]


async def test_a_schedule_for_an_unknown_work_in_the_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScheduleError, match=r"schedule 'typo': unknown work 'nope'"):
        async with running(tmp_path / "jobs.db", WallClock(), [schedule("typo", "nope", "@daily")]):
            pass


# --- leadership --------------------------------------------------------------------------


async def test_a_second_scheduler_waits_while_the_first_leads(tmp_path: Path) -> None:
    path = tmp_path / "jobs.db"
    first, second = SQLiteStore(path), SQLiteStore(path)
    await first.open()
    await second.open()
    try:
        assert await lead(first, lease=30, holder=holder_name()) == 1
        with pytest.raises(StoreError, match="is in use by the Scheduler"):
            await lead(second, lease=30, holder=holder_name(), wait=False)
        await first.release()
        assert await lead(second, lease=30, holder=holder_name(), wait=False) == 2
        # The first one was taken over: its next write is refused, whole.
        with pytest.raises(LeadershipLost, match="epoch 1 is over"):
            await first.apply([SetFence("x", 1.0)])
    finally:
        await first.aclose()
        await second.aclose()


async def test_a_taken_over_scheduler_is_deposed_and_writes_nothing(tmp_path: Path) -> None:
    store, clock = tmp_path / "jobs.db", WallClock()
    async with running(store, clock) as (scheduler, _):
        with sqlite3.connect(store) as db:  # another Scheduler's takeover, as it writes it
            db.execute("UPDATE leader SET epoch = epoch + 1, holder = 'elsewhere:1:x'")
        clock.wall = START + 31  # 05:00 comes: this Scheduler's commit must fail
        await eventually(scheduler.deposed.is_set, "the Scheduler deposed")
    assert cron_jobs(store) == []


# --- F17: three Schedulers on one store, the leader killed -----------------------------

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
async def test_f17_three_schedulers_one_store_the_leader_killed(tmp_path: Path) -> None:
    """Exactly one job per fire time while the leading Scheduler is SIGKILLed and a
    standby takes over; fire times missed meanwhile are caught up (run_all)."""
    socket, store, runs = tmp_path / "s.sock", tmp_path / "jobs.db", tmp_path / "runs"
    config = tmp_path / "aw.toml"
    config.write_text(
        f"""
[jobs]
topology = "distributed"
modules = ["tests.jobs.works"]

[scheduler]
address = "unix://{socket}"
store = "{store}"
leader_lease = 1.5

[pools.p]
kind = "local"
size = 4
outbox = "{tmp_path / "outbox"}"

[schedules.tick]
work = "note_run"
cron = "* * * * * *"
missed = "run_all"
payload = "{runs}"
"""
    )
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = [tmp_path / f"scheduler-{i}.log" for i in range(3)]

    def start(name: str, role: str, log: Path) -> None:
        with open(log, "ab") as out:
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "actorwork", "--config", str(config), role],
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )

    def executed() -> list[str]:
        return runs.read_text().split() if runs.exists() else []

    def leader_pid() -> int:
        with sqlite3.connect(store) as db:
            (holder,) = db.execute("SELECT holder FROM leader").fetchone()
        return int(holder.split(":")[1])

    try:
        for i, log in enumerate(logs):
            start(f"scheduler-{i}", "scheduler", log)
        start("pool", "pool", tmp_path / "pool.log")
        await eventually(lambda: len(executed()) >= 3, "three firings run")
        first_leader = leader_pid()
        os.kill(first_leader, signal.SIGKILL)
        killed_at = len(set(executed()))
        await eventually(
            lambda: store.exists() and leader_pid() != first_leader, "a standby taking over"
        )
        await eventually(lambda: len(set(executed())) >= killed_at + 3, "firings after it")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    fired = fired_jobs(logs)
    assert len(fired) == len(set(fired)), f"a fire time fired twice: {sorted(fired)}"
    times = sorted(parse_unique_key(job_id)[1] for job_id in fired)  # type: ignore[index]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert set(gaps) == {timedelta(seconds=1)}, f"fire times skipped: {times}"
    assert set(cron_jobs(store)) == set(fired)  # one job each, all stored
