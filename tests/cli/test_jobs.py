"""The job commands as a user runs them: the demo, and a distributed topology of processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "ACTORWORK_LOG_LEVEL": "info"}


def _actorwork(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorwork", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_the_demo_runs_background_jobs_and_shows_results_logs_and_artifacts(
    tmp_path: Path,
) -> None:
    done = _actorwork("demo", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "status   succeeded after attempt 1 of 3" in out  # the invoice
    assert "value    49.75" in out
    assert "stdout  info    invoice for ada: 49.75" in out
    assert "value    'ok on attempt 3'" in out  # flaky: two retries, each shown
    assert "#1 error     ConnectionError: service unavailable (attempt 1)" in out
    assert "#2 error     ConnectionError: service unavailable (attempt 2)" in out
    assert "status   dead after attempt 2 of 2" in out  # divide by zero
    assert "ZeroDivisionError: float division by zero" in out
    assert "refused at submit, nothing queued" in out
    [invoice] = (tmp_path / ".actorwork" / "demo" / "artifacts").glob("*/invoice.txt")
    assert "total:       49.75" in invoice.read_text()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def distributed(tmp_path: Path) -> Iterator[Path]:
    """A Scheduler and a process Pool started as ``actorwork scheduler`` and ``actorwork pool``."""
    config = tmp_path / "app.toml"
    config.write_text(
        f"""
[jobs]
topology = "distributed"
modules = ["tests.jobs.works"]

[scheduler]
address = "tcp://127.0.0.1:{_free_port()}"
store = "{tmp_path}/jobs.db"
lease = 5.0

[pools.main]
kind = "process"
size = 2
outbox = "{tmp_path}/outbox"
"""
    )
    logs = [(tmp_path / f"{role}.log").open("w") for role in ("scheduler", "pool")]
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "actorwork", "--config", str(config), role],
            cwd=tmp_path,
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        for role, log in zip(("scheduler", "pool"), logs, strict=True)
    ]
    try:
        yield config
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in logs:
            log.close()


@pytest.mark.slow
def test_submit_and_status_against_scheduler_and_pool_processes(
    distributed: Path, tmp_path: Path
) -> None:
    deadline = time.monotonic() + 60
    while True:  # the Scheduler process may still be starting
        done = _actorwork(
            "--config",
            str(distributed),
            "submit",
            "add",
            '{"x": 20, "y": 22}',
            "--wait",
            cwd=tmp_path,
        )
        if done.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "status   succeeded after attempt 1 of 4" in done.stdout
    assert "value    42" in done.stdout
    job_id = done.stdout.split()[1]

    shown = _actorwork("--config", str(distributed), "status", job_id, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"job {job_id}  work=add" in shown.stdout
    listed = _actorwork("--config", str(distributed), "status", cwd=tmp_path)
    assert job_id in listed.stdout
    assert "succeeded" in listed.stdout

    refused = _actorwork("--config", str(distributed), "submit", "add", '{"x": "a"}', cwd=tmp_path)
    assert refused.returncode == 2
    assert "payload for work 'add' must be Pair" in refused.stderr
    unknown = _actorwork("--config", str(distributed), "submit", "nope", cwd=tmp_path)
    assert unknown.returncode == 2
    assert "unknown work 'nope'" in unknown.stderr
    missing = _actorwork("--config", str(distributed), "status", "no-such-job", cwd=tmp_path)
    assert missing.returncode == 2
    assert "no job 'no-such-job'" in missing.stderr


def test_schedules_lists_the_config_and_changes_them(tmp_path: Path) -> None:
    """The 5 am Monday-Friday example: listed offline from the config, then through a
    Scheduler (inline topology), disabled, and refused naming a bad value."""
    config = tmp_path / "app.toml"
    config.write_text(
        f"""
[jobs]
modules = ["tests.jobs.works"]

[scheduler]
store = "{tmp_path}/jobs.db"

[schedules.morning]
work = "add"
cron = "0 5 * * 1-5"
timezone = "Europe/London"
payload = {{ x = 1, y = 2 }}
"""
    )
    offline = _actorwork("--config", str(config), "schedules", "--offline", cwd=tmp_path)
    assert offline.returncode == 0, offline.stderr
    assert "morning" in offline.stdout
    assert "'0 5 * * 1-5'" in offline.stdout
    times = offline.stdout.split("next: ")[1].split(", ")
    assert len(times) == 3
    assert all(
        " 05:00:00 " in t and t.split()[0] in {"Mon", "Tue", "Wed", "Thu", "Fri"} for t in times
    )
    listed = _actorwork("--config", str(config), "schedules", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "[config]" in listed.stdout
    disabled = _actorwork("--config", str(config), "schedules", "disable", "morning", cwd=tmp_path)
    assert disabled.returncode == 0, disabled.stderr
    assert "(disabled)" in disabled.stdout
    assert "next: -" in disabled.stdout
    again = _actorwork("--config", str(config), "schedules", cwd=tmp_path)  # a new Scheduler
    assert "(disabled)" in again.stdout, "a disable lasts across restarts"
    missing = _actorwork("--config", str(config), "schedules", "remove", "nope", cwd=tmp_path)
    assert missing.returncode == 2
    assert "no schedule 'nope'" in missing.stderr
    later = _actorwork(
        "--config",
        str(config),
        "submit",
        "add",
        '{"x": 1, "y": 2}',
        "--delay",
        "7200",
        cwd=tmp_path,
    )
    assert later.returncode == 0, later.stderr
    status = _actorwork("--config", str(config), "status", cwd=tmp_path)
    due = time.strftime("%Y-%m-%d %H", time.localtime(time.time() + 7200))
    assert "scheduled  add" in status.stdout
    assert f"due {due}" in status.stdout  # durable, with its due time
    config.write_text(config.read_text().replace('"Europe/London"', '"Europe/Londn"'))
    bad = _actorwork("--config", str(config), "schedules", "--offline", cwd=tmp_path)
    assert bad.returncode == 2
    assert "schedules.morning.timezone = 'Europe/Londn'" in bad.stderr


def test_status_reads_the_store_while_another_process_runs_its_scheduler(
    tmp_path: Path,
) -> None:
    """An inline app's store is led by the app's process: ``actorwork status`` then
    reads the store itself instead of starting a second Scheduler on it."""
    config = tmp_path / "app.toml"
    config.write_text(
        f"""
[jobs]
modules = ["tests.jobs.works"]

[scheduler]
store = "{tmp_path}/jobs.db"
"""
    )
    args = ("--config", str(config))
    later = _actorwork(*args, "submit", "add", '{"x": 1, "y": 2}', "--delay", "3600", cwd=tmp_path)
    assert later.returncode == 0, later.stderr
    job_id = later.stdout.split()[1]  # "job ID submitted"
    log = tmp_path / "app.log"
    with open(log, "wb") as out:
        app = subprocess.Popen(
            [sys.executable, "-m", "actorwork", *args, "scheduler"],
            cwd=tmp_path,
            env=_env(),
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 60
        while "scheduler_listening" not in log.read_text():
            assert app.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        listed = _actorwork(*args, "status", cwd=tmp_path)
        assert listed.returncode == 0, listed.stderr
        assert "reading_the_store_directly" in listed.stderr
        assert f"{job_id}  scheduled  add" in listed.stdout
        one = _actorwork(*args, "status", job_id, cwd=tmp_path)
        assert one.returncode == 0, one.stderr
        assert "status   scheduled after attempt 0 of 4" in one.stdout
        missing = _actorwork(*args, "status", "nope", cwd=tmp_path)
        assert missing.returncode == 2
        assert "no job 'nope'" in missing.stderr
    finally:
        app.terminate()
        app.wait(timeout=30)
