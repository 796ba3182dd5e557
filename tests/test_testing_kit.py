"""The kit for users' own tests (:mod:`actorwork.testing`), used as a user would.

The first tests ask only for the fixtures ``actorwork_jobs`` and ``actorwork_clock``,
which the ``pytest11`` entry point provides once actorwork is installed. The
``pytest_plugins`` line below loads the same plugin in a checkout whose installed
metadata predates the entry point; the plugin's name is its module's, so with the
entry point too it is loaded once. :func:`test_the_entry_point_brings_the_fixtures`
checks the entry point itself in a user's project, in pytest-asyncio's strict and
auto modes.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest

from actorwork import ConfigError, JobFailed, schedule, work
from actorwork.clock import ManualClock
from actorwork.config import Config, load_config
from actorwork.messages import JobView, ScheduleView
from actorwork.testing import InlineJobs, hosted, job_system, pending

pytest_plugins = ["actorwork.testing.pytest_plugin"]

ROOT = Path(__file__).resolve().parents[1]

#: Calls per key, across attempts: what the works below saw.
calls: dict[str, int] = {}


@work
def remind(user: int) -> str:
    calls[f"remind-{user}"] = calls.get(f"remind-{user}", 0) + 1
    return f"reminded {user}"


@work(retries=3)
def flaky(key: str) -> str:
    """Fails its first two attempts, then succeeds."""
    calls[key] = calls.get(key, 0) + 1
    if calls[key] < 3:
        raise ConnectionError(f"attempt {calls[key]} of {key} failed")
    return f"{key} done"


@work
def tick(label: str) -> str:
    return label


# --- as a user writes them: only the fixtures -------------------------------------------


async def test_a_job_delayed_five_minutes_runs_after_the_clock_moves_five_minutes(
    actorwork_jobs: InlineJobs,
) -> None:
    handle = await actorwork_jobs.submit(remind, 7, delay=timedelta(minutes=5))
    await actorwork_jobs.run_until_idle()
    await actorwork_jobs.advance(299)
    assert await handle.status() == "scheduled"
    assert "remind-7" not in calls
    await actorwork_jobs.advance(1)
    assert await handle.status() == "succeeded"
    assert await handle.result() == "reminded 7"
    assert calls["remind-7"] == 1


async def test_a_job_at_a_time_runs_when_the_clock_reaches_it(
    actorwork_jobs: InlineJobs, actorwork_clock: ManualClock
) -> None:
    at = actorwork_clock.wall() + timedelta(hours=1)
    handle = await actorwork_jobs.submit(remind, 8, at=at)
    await actorwork_jobs.advance(timedelta(minutes=59))
    assert await handle.status() == "scheduled"
    actorwork_clock.set_wall(at)
    await actorwork_jobs.run_until_idle()
    assert await handle.result() == "reminded 8"


async def test_a_flaky_work_is_retried_with_backoff_as_the_clock_moves(
    actorwork_jobs: InlineJobs,
) -> None:
    """The first retry waits 0.9 to 1 s (base 1 s, jitter 10%), the second twice that."""
    handle = await actorwork_jobs.submit(flaky, "flaky-a")
    await actorwork_jobs.run_until_idle()
    view = await handle.view()
    assert (view.status, view.attempt, calls["flaky-a"]) == ("retrying", 1, 1)
    assert view.error == "ConnectionError: attempt 1 of flaky-a failed"
    await actorwork_jobs.advance(0.85)  # before the earliest backoff: nothing runs
    assert (await handle.status(), calls["flaky-a"]) == ("retrying", 1)
    await actorwork_jobs.advance(0.15)
    assert (await handle.status(), calls["flaky-a"]) == ("retrying", 2)
    await actorwork_jobs.advance(1.7)  # the second backoff is at least 1.8 s
    assert calls["flaky-a"] == 2
    await actorwork_jobs.advance(0.3)
    assert await handle.result() == "flaky-a done"
    assert [a.result.outcome for a in await actorwork_jobs.client.attempts(handle.id)] == [
        "error",
        "error",
        "succeeded",
    ]


async def test_a_cron_schedule_fires_once_per_advance_past_its_fire_time(
    actorwork_jobs: InlineJobs,
) -> None:
    hourly = schedule("hourly-tick", tick, "0 * * * *", payload="tick")
    await actorwork_jobs.client.add_schedule(hourly)

    async def fired() -> list[JobView]:
        return [v for v in await actorwork_jobs.client.list() if v.work == tick.name]

    await actorwork_jobs.advance(timedelta(minutes=59))  # 00:59
    assert await fired() == []
    await actorwork_jobs.advance(timedelta(minutes=1))  # 01:00
    assert [v.status for v in await fired()] == ["succeeded"]
    await actorwork_jobs.advance(timedelta(minutes=30))  # 01:30
    assert len(await fired()) == 1
    await actorwork_jobs.advance(timedelta(minutes=30))  # 02:00
    jobs = await fired()
    assert [v.status for v in jobs] == ["succeeded", "succeeded"]
    assert [v.id for v in jobs] == [
        "cron:hourly-tick:2025-01-01T02:00:00Z",
        "cron:hourly-tick:2025-01-01T01:00:00Z",
    ]


async def test_a_job_that_fails_for_good_raises_its_error(actorwork_jobs: InlineJobs) -> None:
    handle = await actorwork_jobs.submit(flaky, "flaky-b", retries=0)
    await actorwork_jobs.run_until_idle()
    with pytest.raises(JobFailed, match="attempt 1 of flaky-b failed"):
        await handle.result()


class TestYourOwnConfig:
    """``actorwork_config`` overridden: the kit runs that configuration's pools and
    retry settings, inline and on its own store whatever the file says."""

    @pytest.fixture
    def actorwork_config(self, tmp_path: Path) -> Config:
        path = tmp_path / "actorwork.toml"
        path.write_text(
            textwrap.dedent(f"""
                [jobs]
                topology = "distributed"

                [scheduler]
                address = "tcp://127.0.0.1:7400"
                store = "{tmp_path}/production.db"
                retry_base = 10.0

                [pools.mail]
                queues = ["mail"]
            """)
        )
        return load_config(path, env={})

    async def test_its_pools_and_backoff_are_used(
        self, actorwork_jobs: InlineJobs, tmp_path: Path
    ) -> None:
        handle = await actorwork_jobs.submit(flaky, "flaky-c", queue="mail")
        await actorwork_jobs.run_until_idle()
        assert (await handle.view()).result.pool == "mail"  # type: ignore[union-attr]
        await actorwork_jobs.advance(8.9)  # the first retry waits 9 to 10 s
        assert calls["flaky-c"] == 1
        await actorwork_jobs.advance(1.1)
        assert calls["flaky-c"] == 2
        assert actorwork_jobs.store.parent == actorwork_jobs.directory
        assert not (tmp_path / "production.db").exists()


# --- the context manager ----------------------------------------------------------------


async def test_the_store_is_temporary_and_gone_after() -> None:
    async with job_system() as jobs:
        handle = await jobs.submit(remind, 9)
        await jobs.run_until_idle()
        assert await handle.result() == "reminded 9"
        assert jobs.store.is_file()
        assert jobs.store.parent == jobs.directory
        assert any((jobs.directory / "outbox").iterdir())
    assert not jobs.directory.exists()


async def test_each_job_system_has_a_store_of_its_own() -> None:
    async with job_system() as first, job_system() as second:
        await first.submit(remind, 10)
        await first.run_until_idle()
        assert first.store != second.store
        assert len(await first.client.list()) == 1
        assert await second.client.list() == []


async def test_waiting_for_a_queue_no_pool_takes_names_the_job_and_the_queues() -> None:
    async with job_system() as jobs:
        handle = await jobs.submit(remind, 11, queue="nowhere")
        with pytest.raises(TimeoutError) as info:
            await jobs.run_until_idle(timeout=0.2)
        message = str(info.value)
        assert f"job {handle.id!r} ({remind.name}) is queued on queue 'nowhere'" in message
        assert "the pools take queues: default" in message
        await handle.cancel()
        await jobs.run_until_idle()
        with pytest.raises(ValueError, match="timeout must be a positive number of seconds, got 0"):
            await jobs.run_until_idle(timeout=0)


async def test_a_negative_delay_is_refused_naming_it() -> None:
    async with job_system() as jobs:
        with pytest.raises(ValueError, match="delay must not be negative, got -1"):
            await jobs.submit(remind, 12, delay=-1)
        assert await jobs.client.list() == []


async def test_hosted_is_left_by_another_task_than_the_one_that_entered_it() -> None:
    """How pytest-asyncio runs a fixture's setup and teardown; a task group inside."""
    events: list[str] = []

    @asynccontextmanager
    async def grouped() -> AsyncIterator[str]:
        async with anyio.create_task_group():
            events.append("entered")
            yield "inside"
        events.append("left")

    manager = hosted(grouped())
    assert await asyncio.create_task(manager.__aenter__()) == "inside"
    await asyncio.create_task(manager.__aexit__(None, None, None))
    assert events == ["entered", "left"]


async def test_hosted_raises_what_entering_raised() -> None:
    @asynccontextmanager
    async def broken() -> AsyncIterator[None]:
        raise ConfigError("pools.main.size = 0 must be at least 1")
        yield

    with pytest.raises(ConfigError, match="size = 0 must be at least 1"):
        async with hosted(broken()):
            pass


# --- pending: when the system counts as idle (pure) -------------------------------------

WALL = datetime(2025, 1, 1, 1, 0, tzinfo=UTC).timestamp()


def _job(status: str, due: float | None = None) -> JobView:
    return JobView(
        id="j1",
        work="w",
        queue="default",
        priority=0,
        status=status,  # type: ignore[arg-type]
        attempt=1,
        max_attempts=3,
        created=0.0,
        updated=0.0,
        due=due,
    )


def _schedule(fence: datetime, *, waiting: bool = False, enabled: bool = True) -> ScheduleView:
    s = schedule("s", "w", "0 * * * *", enabled=enabled)
    return ScheduleView(
        schedule=s, source="api", fence=fence.timestamp(), next_fires=[], waiting=waiting
    )


@pytest.mark.parametrize(
    ("status", "due", "busy"),
    [
        ("queued", None, True),
        ("running", None, True),
        ("scheduled", WALL + 1, False),
        ("scheduled", WALL, True),
        ("retrying", WALL + 0.5, False),
        ("retrying", WALL - 1, True),
        ("succeeded", None, False),
        ("dead", None, False),
    ],
)
def test_pending_counts_the_jobs_that_run_without_the_clock_moving(
    status: str, due: float | None, busy: bool
) -> None:
    assert bool(pending([_job(status, due)], [], WALL)) is busy


def test_pending_counts_a_fire_time_come_and_not_decided() -> None:
    midnight = datetime(2025, 1, 1, tzinfo=UTC)
    one = datetime(2025, 1, 1, 1, tzinfo=UTC)
    assert pending([], [_schedule(midnight)], WALL) == [
        "schedule 's' fires at 2025-01-01T01:00:00+00:00"
    ]
    assert pending([], [_schedule(one)], WALL) == []  # 01:00 decided
    assert pending([], [_schedule(midnight, waiting=True)], WALL) == []
    assert pending([], [_schedule(midnight, enabled=False)], WALL) == []


# --- the entry point, in a user's project -----------------------------------------------

USER_TEST = """
from datetime import timedelta

import pytest

from actorwork import work


@work
def greet(name: str) -> str:
    return f"hello {name}"


MARK


async def test_delayed(actorwork_jobs):
    handle = await actorwork_jobs.submit(greet, "ada", delay=timedelta(minutes=5))
    await actorwork_jobs.advance(299)
    assert await handle.status() == "scheduled"
    await actorwork_jobs.advance(1)
    assert await handle.result() == "hello ada"
"""


def _entry_points() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return dict(project.get("entry-points", {}).get("pytest11", {}))


def _user_project(tmp_path: Path, ini: str, test: str) -> tuple[Path, dict[str, str]]:
    """A project with one test file, and the environment of a Python where actorwork is
    installed: its metadata on the path, with the entry points pyproject.toml declares."""
    site = tmp_path / "site"
    info = site / "actorwork_under_test-0.0.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: actorwork-under-test\n")
    lines = [f"{name} = {target}" for name, target in _entry_points().items()]
    (info / "entry_points.txt").write_text("[pytest11]\n" + "\n".join(lines) + "\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "pytest.ini").write_text(f"[pytest]\n{ini}\n")
    (project / "test_user.py").write_text(textwrap.dedent(test))
    env = {"PYTHONPATH": f"{site}:{ROOT}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    return project, env


def _pytest(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["strict", "auto"])
def test_the_entry_point_brings_the_fixtures(tmp_path: Path, mode: str) -> None:
    """In pytest-asyncio's strict mode (the test marked) and auto mode, no import needed."""
    mark = "pytestmark = pytest.mark.asyncio" if mode == "strict" else ""
    ini = f"asyncio_mode = {mode}\nasyncio_default_fixture_loop_scope = function"
    project, env = _user_project(tmp_path, ini, USER_TEST.replace("MARK", mark))
    done = _pytest(project, env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


@pytest.mark.slow
def test_without_pytest_asyncio_the_fixture_says_what_to_install(tmp_path: Path) -> None:
    """pytest-asyncio not importable (a stand-in that fails, its plugin blocked)."""
    test = (
        "def test_jobs(actorwork_jobs):\n    pass\n\ndef test_clock(actorwork_clock):\n    pass\n"
    )
    project, env = _user_project(tmp_path, "", test)
    (project / "pytest_asyncio.py").write_text("raise ImportError('not installed')\n")
    env["PYTHONPATH"] = f"{project}:{env['PYTHONPATH']}"
    done = _pytest(project, env, "-p", "no:asyncio")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 passed, 1 error" in done.stdout
    assert "the fixture 'actorwork_jobs' runs in an asyncio test: install pytest-asyncio" in (
        done.stdout
    )
