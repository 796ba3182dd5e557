"""The Scheduler's cron, without I/O: jobs from firings, fences, loading, live counts."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from actorwork.errors import ScheduleError
from actorwork.scheduler.cron import Cron
from actorwork.scheduler.state import (
    DropSchedule,
    Job,
    Now,
    Persist,
    SaveSchedule,
    SchedulerState,
    SetFence,
)
from actorwork.schedules import Schedule, schedule
from actorwork.work import WorkRegistry, work

registry = WorkRegistry()


@work(name="report", queue="reports", priority=3, retries=5, timeout=60.0, registry=registry)
async def report() -> None:
    return None


START = datetime(2026, 3, 27, 4, 59, 30, tzinfo=UTC).timestamp()


def make() -> tuple[Cron, SchedulerState]:
    state = SchedulerState(lease=30.0)
    return Cron(registry, state.submit, state.next_seq), state


def at(seconds: float) -> Now:
    return Now(seconds, START + seconds)


def jobs(effects: list[object]) -> list[Job]:
    return [e.job for e in effects if isinstance(e, Persist)]


def test_a_firing_takes_the_works_defaults_and_the_schedules_overrides() -> None:
    cron, _ = make()
    cron.load([], [schedule("plain", "report", "* * * * *")], [], at(0))
    cron.add(schedule("custom", "report", "* * * * *", queue="urgent", retries=0), at(0))
    fired = {job.unique_key: job for job in jobs(cron.tick(at(31)))}
    plain = fired["cron:plain:2026-03-27T05:00:00Z"]
    custom = fired["cron:custom:2026-03-27T05:00:00Z"]
    assert (plain.queue, plain.priority, plain.max_attempts, plain.timeout) == (
        "reports",
        3,
        6,
        60.0,
    )
    assert (custom.queue, custom.priority, custom.max_attempts) == ("urgent", 3, 1)
    assert plain.id == plain.unique_key  # the job id is the key of the fire time


def test_each_firing_moves_the_fence_in_the_same_batch() -> None:
    cron, _ = make()
    cron.load([], [schedule("plain", "report", "* * * * *")], [], at(0))
    effects = cron.tick(at(31))
    fence = [e for e in effects if isinstance(e, SetFence)]
    assert fence == [SetFence("plain", datetime(2026, 3, 27, 5, 0, tzinfo=UTC).timestamp())]
    assert cron.tick(at(32)) == []  # decided: nothing fires twice


def test_loading_drops_config_schedules_gone_from_the_config_and_keeps_api_ones() -> None:
    old = schedule("old", "report", "@daily")
    kept = schedule("kept", "report", "@hourly")
    stored = [
        (msgspec.msgpack.encode(old), "config", START),
        (msgspec.msgpack.encode(kept), "api", START),
    ]
    cron, _ = make()
    effects = cron.load(stored, [], [], at(0))
    assert DropSchedule("old") in effects
    assert [s.name for s in cron.book.schedules()] == ["kept"]


def test_a_config_schedule_disabled_at_runtime_stays_disabled_after_a_restart() -> None:
    nightly = schedule("nightly", "report", "0 3 * * *")
    cron, _ = make()
    cron.load([], [nightly], [], at(0))
    saved = [e for e in cron.enable("nightly", False, at(0)) if isinstance(e, SaveSchedule)]
    stored = [(saved[-1].definition, "config", START)]
    again, _ = make()
    again.load(stored, [nightly], [], at(0))
    assert not again.book.get("nightly").enabled


def test_overlap_skip_counts_live_jobs_until_they_finish() -> None:
    cron, _ = make()
    cron.load([], [schedule("busy", "report", "* * * * *", overlap="skip")], [], at(0))
    (first,) = jobs(cron.tick(at(31)))
    assert jobs(cron.tick(at(91))) == []  # 05:01 skipped: 05:00's job is live
    assert not cron.finished(first.id)  # nothing waited for it
    assert len(jobs(cron.tick(at(151)))) == 1  # 05:02 runs


def test_a_schedule_for_an_unknown_work_is_refused_naming_both() -> None:
    cron, _ = make()
    with pytest.raises(ScheduleError, match=r"schedule 'x': unknown work 'nope'"):
        cron.add(Schedule("x", "nope", "* * * * *"), at(0))
