"""Cron schedules, their fire times and the firing decisions, with times passed in.

No test sleeps: wall-clock readings come from a ManualClock or are written out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actorwork.clock import Clock, ManualClock, SystemClock
from actorwork.errors import ConfigError, ScheduleError, ScheduleNotFound
from actorwork.scheduler.cron_state import (
    Fence,
    Fire,
    Instruction,
    ScheduleBook,
    Skip,
    jitter_offset,
    parse_unique_key,
    unique_key,
)
from actorwork.schedules import (
    Schedule,
    fire_times,
    next_fire_times,
    schedule,
    schedule_from_config,
)

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def fires(instructions: Iterable[Instruction]) -> list[Fire]:
    return [i for i in instructions if isinstance(i, Fire)]


def skips(instructions: Iterable[Instruction]) -> list[Skip]:
    return [i for i in instructions if isinstance(i, Skip)]


def local(times: Iterable[datetime], zone: ZoneInfo) -> list[str]:
    return [t.astimezone(zone).strftime("%a %m-%d %H:%M:%S %Z") for t in times]


# --- the clock ----------------------------------------------------------------------------


def test_manual_clock_moves_both_readings_or_one() -> None:
    clock = ManualClock(monotonic=10.0, wall=datetime(2025, 3, 28, 5, tzinfo=LONDON))
    assert isinstance(clock, Clock)
    assert clock.wall() == utc(2025, 3, 28, 5)
    assert clock.wall().tzinfo is UTC
    clock.advance(60)
    assert (clock.monotonic(), clock.wall()) == (70.0, utc(2025, 3, 28, 5, 1))
    clock.jump_wall(timedelta(hours=-1))
    assert (clock.monotonic(), clock.wall()) == (70.0, utc(2025, 3, 28, 4, 1))
    clock.advance_monotonic(5)
    clock.set_wall(utc(2030, 1, 1))
    assert (clock.monotonic(), clock.wall()) == (75.0, utc(2030, 1, 1))


def test_manual_clock_refuses_a_monotonic_step_back_and_a_naive_wall() -> None:
    clock = ManualClock()
    with pytest.raises(ValueError, match="-1"):
        clock.advance_monotonic(-1)
    with pytest.raises(ValueError, match="no time zone"):
        clock.set_wall(datetime(2025, 1, 1))


def test_system_clock_reads_aware_utc() -> None:
    clock = SystemClock()
    assert isinstance(clock, Clock)
    assert clock.wall().tzinfo is UTC
    assert clock.monotonic() <= clock.monotonic()


# --- fire times ---------------------------------------------------------------------------


def test_five_am_monday_to_friday() -> None:
    report = schedule("report", "reports.build", "0 5 * * mon-fri", timezone="Europe/London")
    times = next_fire_times(report, utc(2025, 3, 27, 12), 6)  # a Thursday, noon
    assert local(times, LONDON) == [
        "Fri 03-28 05:00:00 GMT",
        "Mon 03-31 05:00:00 BST",  # clocks went forward on Sunday: still 05:00 local
        "Tue 04-01 05:00:00 BST",
        "Wed 04-02 05:00:00 BST",
        "Thu 04-03 05:00:00 BST",
        "Fri 04-04 05:00:00 BST",
    ]
    assert all(t.tzinfo == LONDON for t in times)


def test_a_week_across_the_autumn_change_keeps_local_time() -> None:
    daily = schedule("daily", "w", "0 5 * * *", timezone="Europe/London")
    times = next_fire_times(daily, utc(2025, 10, 23, 12), 7)
    assert {t.astimezone(LONDON).hour for t in times} == {5}
    offsets = [t.astimezone(UTC).hour for t in times]
    assert offsets == [4, 4, 5, 5, 5, 5, 5]  # BST until the night before Sunday 26 October


def test_a_local_time_in_the_spring_gap_fires_once_at_its_end() -> None:
    s = schedule("gap", "w", "30 1 * * *", timezone="Europe/London")
    times = next_fire_times(s, utc(2025, 3, 29, 12), 2)
    assert local(times, LONDON) == ["Sun 03-30 02:00:00 BST", "Mon 03-31 01:30:00 BST"]
    both = schedule("both", "w", "0,30 1 * * *", timezone="Europe/London")
    times = next_fire_times(both, utc(2025, 3, 29, 12), 3)
    assert local(times, LONDON) == [
        "Sun 03-30 02:00:00 BST",  # 01:00 and 01:30 do not exist: one firing
        "Mon 03-31 01:00:00 BST",
        "Mon 03-31 01:30:00 BST",
    ]


def test_a_repeated_local_time_fires_once_at_its_first_occurrence() -> None:
    for cron in ("30 1 * * *", "0 30 1 * * *"):  # five fields and six
        s = schedule("twice", "w", cron, timezone="Europe/London")
        times = next_fire_times(s, utc(2025, 10, 25, 12), 2)
        assert local(times, LONDON) == ["Sun 10-26 01:30:00 BST", "Mon 10-27 01:30:00 GMT"]
    # Asked from inside the repeated hour, after the first 01:30: not again that day.
    s = schedule("twice", "w", "30 1 * * *", timezone="Europe/London")
    second_pass = datetime(2025, 10, 26, 1, 10, tzinfo=LONDON, fold=1)
    assert local(next_fire_times(s, second_pass, 1), LONDON) == ["Mon 10-27 01:30:00 GMT"]


def test_elapsed_time_schedules_follow_real_hours_across_both_changes() -> None:
    hourly = schedule("hourly", "w", "0 * * * *", timezone="Europe/London")
    second = timedelta(seconds=1)
    autumn = list(_until(hourly, utc(2025, 10, 25, 23) - second, utc(2025, 10, 26, 23)))
    spring = list(_until(hourly, utc(2025, 3, 30) - second, utc(2025, 3, 30, 22)))
    # From 00:00 to 23:00 local: 25 firings on the long day, 23 on the short one.
    assert len(autumn) == 25
    assert len(spring) == 23
    assert local(autumn[1:3], LONDON) == ["Sun 10-26 01:00:00 BST", "Sun 10-26 01:00:00 GMT"]
    assert "Sun 03-30 01:00:00 GMT" not in local(spring, LONDON)


def test_new_york_across_both_changes() -> None:
    gap = schedule("gap", "w", "30 2 * * *", timezone="America/New_York")
    assert local(next_fire_times(gap, utc(2025, 3, 8, 12), 2), NEW_YORK) == [
        "Sun 03-09 03:00:00 EDT",
        "Mon 03-10 02:30:00 EDT",
    ]
    twice = schedule("twice", "w", "30 1 * * *", timezone="America/New_York")
    assert local(next_fire_times(twice, utc(2025, 11, 1, 12), 2), NEW_YORK) == [
        "Sun 11-02 01:30:00 EDT",
        "Mon 11-03 01:30:00 EST",
    ]
    nine = schedule("nine", "w", "0 9 * * *", timezone="America/New_York")
    week = next_fire_times(nine, utc(2025, 10, 30), 7)
    assert {t.hour for t in week} == {9}
    assert {t.utcoffset() for t in week} == {
        timedelta(hours=-4),
        timedelta(hours=-5),
    }


def test_seconds_field_and_shorthands() -> None:
    s = schedule("fast", "w", "*/20 * * * * *")
    assert [t.second for t in next_fire_times(s, utc(2025, 1, 1), 4)] == [20, 40, 0, 20]
    daily = schedule("d", "w", "@daily")
    assert next_fire_times(daily, utc(2025, 1, 1, 12), 1) == [utc(2025, 1, 2)]


def test_fire_times_are_strictly_after_and_increasing() -> None:
    s = schedule("m", "w", "* * * * *")
    times = list(_until(s, utc(2025, 1, 1, 0, 0, 30), utc(2025, 1, 1, 0, 5)))
    assert times == [utc(2025, 1, 1, 0, m) for m in range(1, 6)]
    assert next(fire_times(s, utc(2025, 1, 1, 0, 1))) == utc(2025, 1, 1, 0, 2)


def _until(s: Schedule, after: datetime, upto: datetime) -> Iterable[datetime]:
    for t in fire_times(s, after):
        if t > upto:
            return
        yield t


# --- checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"cron": "61 * * * *"}, "'61 * * * *'"),
        ({"cron": "* * *"}, "'* * *'"),
        ({"cron": "0 5 * * funday"}, "'0 5 * * funday'"),
        ({"cron": "0 0 30 2 *"}, "'0 0 30 2 *'"),
        ({"timezone": "Europe/Lodnon"}, "'Europe/Lodnon'"),
        ({"timezone": "../../etc/passwd"}, "'../../etc/passwd'"),
        ({"jitter": -1.0}, "-1.0"),
        ({"jitter": math.nan}, "nan"),
        ({"missed": "sometimes"}, "'sometimes'"),
        ({"overlap": "maybe"}, "'maybe'"),
        ({"catch_up": 0.0}, "0.0"),
        ({"retries": -2}, "-2"),
        ({"name": "a:b"}, "'a:b'"),
    ],
)
def test_an_invalid_schedule_is_refused_naming_the_value(
    options: dict[str, object], named: str
) -> None:
    fields: dict[str, object] = {"name": "nightly", "work": "w", "cron": "0 5 * * *", **options}
    with pytest.raises(ScheduleError) as info:
        Schedule(**fields)  # type: ignore[arg-type]
    assert named in str(info.value)


def test_an_invalid_schedule_does_not_decode_from_the_wire() -> None:
    good = schedule("nightly", "w", "0 5 * * *", timezone="Europe/London", payload=[1, 2])
    wire = msgspec.msgpack.encode(good)
    assert msgspec.msgpack.decode(wire, type=Schedule) == good
    bad = wire.replace(b"0 5 * * *", b"0 5 * * X")
    with pytest.raises(msgspec.ValidationError, match="'0 5 \\* \\* X'"):
        msgspec.msgpack.decode(bad, type=Schedule)


def test_from_config_table() -> None:
    table = {
        "work": "reports.build",
        "cron": "0 5 * * mon-fri",
        "timezone": "Europe/London",
        "payload": {"kind": "daily"},
        "jitter": 30,
        "missed": "run_all",
        "overlap": "skip",
        "queue": "reports",
    }
    s = schedule_from_config("weekday-report", table, source="app.toml")
    assert (s.name, s.work, s.jitter, s.missed, s.overlap, s.queue) == (
        "weekday-report",
        "reports.build",
        30.0,
        "run_all",
        "skip",
        "reports",
    )
    assert msgspec.msgpack.decode(s.payload) == {"kind": "daily"}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"work": "w", "cron": "bad"}, "app.toml: schedules.nightly.cron = 'bad': "),
        (
            {"work": "w", "cron": "0 5 * * *", "timezone": "Mars/Base"},
            "schedules.nightly.timezone = 'Mars/Base': time zone 'Mars/Base'",
        ),
        ({"work": "w", "cron": "0 5 * * *", "jitter": "soon"}, "schedules.nightly.jitter = 'soon'"),
        ({"work": "w", "cron": "0 5 * * *", "missed": "never"}, "missed = 'never'"),
        ({"work": "w", "cron": "0 5 * * *", "colour": 1}, "schedules.nightly.colour is not"),
        ({"cron": "0 5 * * *"}, "schedules.nightly.work is missing"),
    ],
)
def test_from_config_names_key_and_value(table: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        schedule_from_config("nightly", table, source="app.toml")
    assert message in str(info.value)


# --- firing -------------------------------------------------------------------------------


def test_unique_keys_and_jitter_depend_only_on_schedule_and_fire_time() -> None:
    t = datetime(2025, 3, 28, 5, tzinfo=LONDON)
    key = unique_key("report", t)
    assert key == "cron:report:2025-03-28T05:00:00Z"
    assert parse_unique_key(key) == ("report", t)
    assert parse_unique_key("user-key") is None
    assert parse_unique_key("cron:x:soon") is None
    offsets = {jitter_offset("report", t + timedelta(days=d), 60.0) for d in range(50)}
    assert len(offsets) > 40
    assert all(timedelta(0) <= o < timedelta(seconds=60) for o in offsets)
    assert jitter_offset("report", t, 60.0) == jitter_offset("report", t, 60.0)
    assert jitter_offset("report", t, 0.0) == timedelta(0)


def test_register_fences_at_now_and_fires_when_due() -> None:
    clock = ManualClock(wall=utc(2025, 3, 27, 12))
    book = ScheduleBook()
    report = schedule("report", "w", "0 5 * * mon-fri", timezone="Europe/London", jitter=30)
    assert book.register(report, clock.wall()) == [Fence("report", clock.wall())]
    assert book.next_due() == utc(2025, 3, 28, 5)
    assert book.tick(clock.wall()) == []
    clock.set_wall(utc(2025, 3, 28, 5, 0, 1))
    (fire,) = book.tick(clock.wall())
    assert isinstance(fire, Fire)
    assert (fire.fire_time, fire.reason, fire.fence) == (utc(2025, 3, 28, 5), "due", fire.fire_time)
    assert fire.unique_key == "cron:report:2025-03-28T05:00:00Z"
    assert fire.fire_time <= fire.run_at < fire.fire_time + timedelta(seconds=30)
    assert book.tick(clock.wall()) == []
    assert book.next_due() == utc(2025, 3, 31, 4)  # Monday 05:00 BST
    assert book.fence("report") == utc(2025, 3, 28, 5)


def test_restart_in_the_middle_of_a_firing_fires_each_time_once() -> None:
    s = schedule("report", "w", "0 5 * * *", jitter=120)
    registered = utc(2025, 3, 1)
    now = utc(2025, 3, 2, 5, 0, 5)
    first = ScheduleBook()
    first.register(s, registered)
    (fire,) = fires(first.tick(now))
    # The shell committed the job and the fence together, then died: nothing again.
    after_commit = ScheduleBook()
    assert after_commit.register(s, now, fence=fire.fence) == []
    assert after_commit.tick(now) == []
    assert after_commit.next_due() == utc(2025, 3, 3, 5)
    # It died before the commit: the same firing again, same key and run time, so the
    # job it submits now is the one that never got stored.
    before_commit = ScheduleBook()
    before_commit.register(s, now, fence=registered)
    assert before_commit.tick(now) == [fire]


def test_schedulers_sharing_a_store_decide_identical_firings() -> None:
    s = schedule("report", "w", "*/5 * * * *", jitter=240)
    books = [ScheduleBook() for _ in range(3)]
    for book in books:
        book.register(s, utc(2025, 1, 1), fence=utc(2025, 1, 1))
    decided = [book.tick(utc(2025, 1, 1, 0, 5, 1)) for book in books]
    assert decided[0] == decided[1] == decided[2]
    assert len(fires(decided[0])) == 1


def _hourly(missed: str, **options: object) -> tuple[ScheduleBook, datetime]:
    book = ScheduleBook(grace=60)
    s = schedule("hourly", "w", "0 * * * *", missed=missed, **options)
    book.register(s, utc(2025, 1, 1, 0, 30))
    return book, utc(2025, 1, 1, 5, 0, 10)  # down from 00:30 to 05:00:10: 01:00-05:00 due


def test_missed_run_once_runs_the_latest_for_all() -> None:
    book, now = _hourly("run_once")
    (fire,) = book.tick(now)
    assert isinstance(fire, Fire)
    assert (fire.fire_time, fire.reason, fire.missed_from) == (
        utc(2025, 1, 1, 5),
        "run_once",
        utc(2025, 1, 1, 1),
    )
    assert book.tick(now + timedelta(minutes=30)) == []


def test_missed_run_all_runs_each_within_the_catch_up_window() -> None:
    book, now = _hourly("run_all", catch_up=3 * 3600 + 60)
    decided = book.tick(now)
    assert [(i.first, i.last, i.reason) for i in skips(decided)] == [
        (utc(2025, 1, 1, 1), utc(2025, 1, 1, 1), "outside_catch_up")
    ]
    assert [(f.fire_time.hour, f.reason) for f in fires(decided)] == [
        (2, "run_all"),
        (3, "run_all"),
        (4, "run_all"),
        (5, "due"),
    ]
    assert [f.fence for f in fires(decided)] == [f.fire_time for f in fires(decided)]


def test_missed_skip_runs_only_what_is_on_time() -> None:
    book, now = _hourly("skip")
    decided = book.tick(now)
    assert [(s.first.hour, s.last.hour, s.reason, s.fence) for s in skips(decided)] == [
        (1, 4, "missed", utc(2025, 1, 1, 4))
    ]
    assert [(f.fire_time.hour, f.reason) for f in fires(decided)] == [(5, "due")]
    late = book.tick(utc(2025, 1, 1, 6, 5))  # five minutes late: past the grace
    assert fires(late) == []
    assert [s.reason for s in skips(late)] == ["missed"]


def test_a_long_downtime_of_a_fast_schedule_is_not_walked_second_by_second() -> None:
    book = ScheduleBook()
    book.register(schedule("fast", "w", "* * * * * *"), utc(2025, 1, 1))
    (fire,) = book.tick(utc(2025, 2, 1))  # a month of seconds missed
    assert isinstance(fire, Fire)
    assert (fire.fire_time, fire.missed_from) == (utc(2025, 2, 1), utc(2025, 1, 1, 0, 0, 1))


def test_overlap_allow_fires_while_a_job_is_live() -> None:
    book = ScheduleBook()
    book.register(schedule("m", "w", "* * * * *", overlap="allow"), utc(2025, 1, 1))
    assert len(fires(book.tick(utc(2025, 1, 1, 0, 1), running={"m"}))) == 1


def test_overlap_skip_drops_fire_times_while_a_job_is_live() -> None:
    book = ScheduleBook()
    book.register(schedule("m", "w", "* * * * *", overlap="skip"), utc(2025, 1, 1))
    (skip,) = book.tick(utc(2025, 1, 1, 0, 1), running={"m", "other"})
    assert skip == Skip("m", utc(2025, 1, 1, 0, 1), utc(2025, 1, 1, 0, 1), "overlap", skip.last)
    assert len(fires(book.tick(utc(2025, 1, 1, 0, 2), running={"other"}))) == 1


def test_overlap_queue_holds_one_firing_until_the_live_job_ends() -> None:
    book = ScheduleBook()
    book.register(schedule("m", "w", "* * * * *", overlap="queue"), utc(2025, 1, 1))
    assert book.tick(utc(2025, 1, 1, 0, 1), running={"m"}) == []
    assert book.waiting() == {"m": utc(2025, 1, 1, 0, 1)}
    assert book.next_due() == utc(2025, 1, 1, 0, 2)
    (folded,) = book.tick(utc(2025, 1, 1, 0, 2), running={"m"})
    assert isinstance(folded, Skip)
    assert (folded.reason, folded.fence) == ("overlap", None)
    assert book.fence("m") == utc(2025, 1, 1)  # a restart now decides 00:01 again
    (fire,) = book.tick(utc(2025, 1, 1, 0, 2, 30), running=set())
    assert isinstance(fire, Fire)
    assert (fire.fire_time, fire.reason, fire.fence) == (
        utc(2025, 1, 1, 0, 1),
        "queued",
        utc(2025, 1, 1, 0, 2),
    )
    assert book.waiting() == {}
    # The released job is live: the next fire time, in the same tick or later, waits.
    assert book.tick(utc(2025, 1, 1, 0, 3), running={"m"}) == []
    assert book.waiting() == {"m": utc(2025, 1, 1, 0, 3)}


def test_f18_wall_clock_back_an_hour_does_not_fire_again() -> None:
    clock = ManualClock(monotonic=100.0, wall=utc(2025, 6, 2, 4, 59))
    book = ScheduleBook()
    book.register(schedule("report", "w", "0 5 * * *"), clock.wall())
    clock.advance(61)
    (fire,) = book.tick(clock.wall())
    assert isinstance(fire, Fire)
    assert fire.fire_time == utc(2025, 6, 2, 5)
    clock.jump_wall(timedelta(hours=-1))
    assert clock.monotonic() == 161.0  # leases, on the monotonic clock, do not notice
    for _ in range(120):  # two hours of ticks a minute apart cross 05:00 again
        clock.advance(60)
        assert book.tick(clock.wall()) == []
    # A Scheduler restarted from the stored fence while the clock is behind: the same.
    again = ScheduleBook()
    again.register(schedule("report", "w", "0 5 * * *"), clock.wall(), fence=fire.fence)
    assert again.tick(utc(2025, 6, 2, 5, 30)) == []


@pytest.mark.parametrize(("missed", "runs"), [("run_once", 1), ("run_all", 1), ("skip", 0)])
def test_f18_wall_clock_forward_an_hour_follows_the_missed_policy(missed: str, runs: int) -> None:
    clock = ManualClock(wall=utc(2025, 6, 2, 4, 30))
    book = ScheduleBook()
    book.register(schedule("report", "w", "0 5 * * *", missed=missed), clock.wall())
    clock.jump_wall(timedelta(hours=1))  # 04:30 -> 05:30, over 05:00
    decided = book.tick(clock.wall())
    assert len(fires(decided)) == runs
    assert len(decided) == 1  # the 05:00 firing is either run or reported skipped
    assert book.fence("report") == utc(2025, 6, 2, 5)


def test_disable_enable_and_remove() -> None:
    book = ScheduleBook()
    book.register(schedule("m", "w", "* * * * *"), utc(2025, 1, 1))
    book.disable("m")
    assert not book.get("m").enabled
    assert book.next_due() is None
    assert book.tick(utc(2025, 1, 1, 1)) == []
    assert book.enable("m", utc(2025, 1, 1, 1)) == [Fence("m", utc(2025, 1, 1, 1))]
    assert book.tick(utc(2025, 1, 1, 1, 0, 30)) == []  # the hour disabled is not missed
    assert [f.fire_time for f in fires(book.tick(utc(2025, 1, 1, 1, 1)))] == [utc(2025, 1, 1, 1, 1)]
    assert [s.name for s in book.schedules()] == ["m"]
    assert "m" in book
    assert len(book) == 1
    book.remove("m")
    assert book.tick(utc(2025, 1, 2)) == []
    assert book.next_due() is None
    with pytest.raises(ScheduleNotFound, match="'m'"):
        book.enable("m", utc(2025, 1, 2))


def test_replacing_a_schedule_keeps_its_fence() -> None:
    book = ScheduleBook()
    book.register(schedule("r", "w", "0 5 * * *"), utc(2025, 1, 1))
    book.tick(utc(2025, 1, 1, 5))
    assert book.register(schedule("r", "w", "0 6 * * *"), utc(2025, 1, 1, 5, 30)) == []
    assert book.fence("r") == utc(2025, 1, 1, 5)
    assert book.next_due() == utc(2025, 1, 1, 6)


def test_next_due_is_the_earliest_of_many() -> None:
    book = ScheduleBook()
    now = utc(2025, 1, 1)
    for minute in range(59, 0, -1):
        book.register(schedule(f"s{minute}", "w", f"{minute} * * * *"), now)
    assert book.next_due() == utc(2025, 1, 1, 0, 1)
    book.disable("s1")
    assert book.next_due() == utc(2025, 1, 1, 0, 2)
    decided = book.tick(utc(2025, 1, 1, 0, 10))
    assert [f.schedule for f in fires(decided)] == [f"s{m}" for m in range(2, 11)]


# --- the property ---------------------------------------------------------------------------

CRONS = [
    ("*/7 * * * *", "UTC"),
    ("0 * * * *", "Europe/London"),
    ("30 1 * * *", "Europe/London"),
    ("0,30 1,2 * * *", "America/New_York"),
    ("*/20 59 * * * *", "UTC"),
]
START = utc(2025, 10, 25, 22)  # both London (01:00 UTC) and New York change inside


@settings(max_examples=60, deadline=None)
@given(
    picks=st.lists(st.sampled_from(range(len(CRONS))), min_size=1, max_size=3, unique=True),
    steps=st.lists(
        st.tuples(st.integers(-2 * 3600, 3 * 3600), st.booleans(), st.booleans()),
        min_size=1,
        max_size=30,
    ),
    overlap=st.sampled_from(["allow", "skip", "queue"]),
    missed=st.sampled_from(["run_once", "run_all", "skip"]),
)
def test_each_fire_time_once_and_none_skipped_under_run_all(
    picks: list[int],
    steps: list[tuple[int, bool, bool]],
    overlap: str,
    missed: str,
) -> None:
    """Random ticks, wall clock jumps both ways, restarts and live jobs.

    Every (schedule, fire_time) fires at most once whatever the policies; with
    ``run_all`` and ``allow`` every fire time from registration to the latest tick
    fires.
    """
    options = {"overlap": overlap, "missed": missed, "catch_up": math.inf}
    specs = [schedule(f"s{i}", "w", CRONS[i][0], timezone=CRONS[i][1], **options) for i in picks]
    clock = ManualClock(wall=START)
    fences: dict[str, datetime] = {}

    def start_book() -> ScheduleBook:
        book = ScheduleBook(grace=60)
        for s in specs:
            for i in book.register(s, clock.wall(), fence=fences.get(s.name)):
                persist(i)
        return book

    def persist(i: Instruction) -> None:
        if i.fence is not None:
            fences[i.schedule] = max(i.fence, fences.get(i.schedule, i.fence))

    fired: list[tuple[str, datetime]] = []
    book = start_book()
    latest = clock.wall()
    for seconds, restart, live in steps:
        clock.jump_wall(seconds)
        latest = max(latest, clock.wall())
        if restart:
            book = start_book()
        running = {s.name for s in specs} if live else set()
        for i in book.tick(clock.wall(), running):
            persist(i)
            if isinstance(i, Fire):
                fired.append((i.schedule, i.fire_time))
    assert len(fired) == len(set(fired))
    if missed == "run_all" and overlap == "allow":
        expected = {(s.name, t) for s in specs for t in _until(s, START, latest)}
        assert set(fired) == expected
