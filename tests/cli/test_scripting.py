"""The command as scripts and people use it: help, --version, --json, submit --at,
schedules add, retry and delete, ping, and a submit made before the Scheduler is up."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from actorwork._version import __version__

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "ACTORWORK_LOG_LEVEL": "info"}


def _actorwork(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "actorwork", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _inline(tmp_path: Path) -> tuple[str, str]:
    config = tmp_path / "app.toml"
    config.write_text(
        f"""
[jobs]
modules = ["tests.jobs.works"]

[scheduler]
store = "{tmp_path}/jobs.db"
retry_base = 0.01
retry_cap = 0.02

[pools.main]
outbox = "{tmp_path}/outbox"
"""
    )
    return "--config", str(config)


def _distributed(tmp_path: Path) -> Path:
    config = tmp_path / "dist.toml"
    config.write_text(
        f"""
[jobs]
topology = "distributed"
modules = ["tests.jobs.works"]
connect_timeout = 60.0

[scheduler]
address = "tcp://127.0.0.1:{_free_port()}"
store = "{tmp_path}/dist.db"
"""
    )
    return config


def test_every_option_has_help_and_the_command_has_examples_and_a_version(
    tmp_path: Path,
) -> None:
    top = _actorwork("--help", cwd=tmp_path).stdout
    assert "--log-level {debug,info,warning,error,critical}" in top
    assert "how much is logged on stderr" in top
    assert "examples:\n  actorwork demo" in top
    assert "actorwork submit report --at 2030-01-31T05:00:00+00:00" in top
    submit = " ".join(_actorwork("submit", "--help", cwd=tmp_path).stdout.split())
    for text in (
        "--queue QUEUE the queue to put it on",
        "higher runs first within its queue",
        "attempts after the first one fails",
        "seconds one attempt may run",
        "while a job with this key is not finished",
        "the job's id; a known id is not submitted again",
        "run it at this ISO-8601 time",
        "print one JSON document",
    ):
        assert text in submit, text
    status = " ".join(_actorwork("status", "--help", cwd=tmp_path).stdout.split())
    assert "--queue QUEUE only jobs of this queue" in status
    assert "--limit LIMIT show at most this many, newest first (default: 20)" in status
    version = _actorwork("--version", cwd=tmp_path)
    assert (version.returncode, version.stdout) == (0, f"actorwork {__version__}\n")
    bad = _actorwork("--log-level", "loud", "config", cwd=tmp_path)
    assert bad.returncode == 2
    assert "argument --log-level: invalid choice: 'loud'" in bad.stderr


def test_json_on_submit_status_and_schedules_is_one_document(tmp_path: Path) -> None:
    config = _inline(tmp_path)
    done = _actorwork(
        *config, "submit", "add", '{"x": 20, "y": 22}', "--wait", "--json", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    submitted = json.loads(done.stdout)  # all of stdout is one document
    assert submitted["created"] is True
    assert submitted["job"]["status"] == "succeeded"
    assert submitted["job"]["result"]["value"] == 42
    one = json.loads(_actorwork(*config, "status", submitted["id"], "--json", cwd=tmp_path).stdout)
    assert (one["id"], one["work"], one["result"]["value"]) == (submitted["id"], "add", 42)
    assert [a["outcome"] for a in one["attempts"]] == ["succeeded"]
    later = json.loads(
        _actorwork(*config, "submit", "add", '{"x": 1, "y": 1}', "--json", cwd=tmp_path).stdout
    )
    assert set(later) == {"id", "created"}
    listed = json.loads(_actorwork(*config, "status", "--json", cwd=tmp_path).stdout)
    assert [job["id"] for job in listed] == [later["id"], submitted["id"]]
    assert json.loads(_actorwork(*config, "schedules", "--json", cwd=tmp_path).stdout) == []


def test_submit_at_an_aware_time_and_a_naive_one_is_refused(tmp_path: Path) -> None:
    config = _inline(tmp_path)
    at = "2031-03-04T05:06:07+02:00"
    done = _actorwork(
        *config, "submit", "add", '{"x": 1, "y": 2}', "--at", at, "--json", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    job_id = json.loads(done.stdout)["id"]
    shown = json.loads(_actorwork(*config, "status", job_id, "--json", cwd=tmp_path).stdout)
    assert shown["status"] == "scheduled"
    assert shown["due"] == dt.datetime.fromisoformat(at).timestamp()
    naive = _actorwork(*config, "submit", "add", "--at", "2031-03-04T05:06:07", cwd=tmp_path)
    assert naive.returncode == 2
    assert "argument --at: '2031-03-04T05:06:07' has no time zone" in naive.stderr
    both = _actorwork(*config, "submit", "add", "--at", at, "--delay", "5", cwd=tmp_path)
    assert both.returncode == 2
    assert "not allowed with argument" in both.stderr


def test_schedules_add_with_its_options_and_a_bad_cron_is_refused(tmp_path: Path) -> None:
    config = _inline(tmp_path)
    added = _actorwork(
        *config,
        "schedules",
        "add",
        "nightly",
        "add",
        "0 3 * * *",
        "--timezone",
        "Europe/London",
        "--payload",
        '{"x": 1, "y": 2}',
        "--missed",
        "skip",
        "--overlap",
        "skip",
        "--json",
        cwd=tmp_path,
    )
    assert added.returncode == 0, added.stderr
    [view] = json.loads(added.stdout)
    assert (view["name"], view["work"], view["cron"]) == ("nightly", "add", "0 3 * * *")
    assert (view["timezone"], view["missed"], view["overlap"]) == ("Europe/London", "skip", "skip")
    assert view["payload"] == {"x": 1, "y": 2}
    assert len(view["next_fires"]) == 3
    listed = _actorwork(*config, "schedules", cwd=tmp_path)  # stored: a new process sees it
    assert "nightly" in listed.stdout
    assert "'0 3 * * *'" in listed.stdout
    bad = _actorwork(*config, "schedules", "add", "x", "add", "61 * * * *", cwd=tmp_path)
    assert bad.returncode == 2
    assert "'61 * * * *'" in bad.stderr or "61" in bad.stderr
    short = _actorwork(*config, "schedules", "add", "x", "add", cwd=tmp_path)
    assert short.returncode == 2
    assert "actorwork schedules add needs NAME WORK CRON" in short.stderr
    policy = _actorwork(
        *config, "schedules", "add", "x", "add", "* * * * *", "--missed", "all", cwd=tmp_path
    )
    assert policy.returncode == 2
    assert "argument --missed: invalid choice: 'all'" in policy.stderr


def test_retry_and_delete_from_the_command(tmp_path: Path) -> None:
    config = _inline(tmp_path)
    dead = _actorwork(*config, "submit", "boom", '"bad"', "--wait", "--json", cwd=tmp_path)
    assert dead.returncode == 1, dead.stderr
    job = json.loads(dead.stdout)
    assert job["job"]["status"] == "dead"
    job_id = job["id"]
    retried = _actorwork(*config, "retry", job_id, cwd=tmp_path)
    assert retried.returncode == 0, retried.stderr
    assert f"{job_id}  queued" in retried.stdout
    shown = json.loads(_actorwork(*config, "status", job_id, "--json", cwd=tmp_path).stdout)
    assert shown["status"] == "queued"
    live = _actorwork(*config, "delete", job_id, cwd=tmp_path)
    assert live.returncode == 2
    assert f"job {job_id!r} is queued; cancel it before deleting it" in live.stderr
    assert _actorwork(*config, "cancel", job_id, cwd=tmp_path).returncode == 0
    deleted = _actorwork(*config, "delete", job_id, cwd=tmp_path)
    assert deleted.returncode == 0, deleted.stderr
    assert f"{job_id}  cancelled" in deleted.stdout
    gone = _actorwork(*config, "status", job_id, cwd=tmp_path)
    assert gone.returncode == 2
    assert f"no job {job_id!r}" in gone.stderr
    missing = _actorwork(*config, "retry", "no-such-job", cwd=tmp_path)
    assert missing.returncode == 2
    assert "no job 'no-such-job'" in missing.stderr


@pytest.mark.slow
def test_a_submit_waits_for_a_scheduler_started_after_it_and_ping_answers(
    tmp_path: Path,
) -> None:
    config = _distributed(tmp_path)
    args = ["--config", str(config)]
    nobody = _actorwork(*args, "ping", "--timeout", "0.5", cwd=tmp_path)
    assert nobody.returncode == 1
    address = config.read_text().split('address = "')[1].split('"')[0]
    assert f"actorwork: the Scheduler at {address!r} did not answer within 0.5 s" in nobody.stderr
    assert f"cannot reach the Scheduler at {address!r}: tried " in nobody.stderr
    command = [sys.executable, "-m", "actorwork", *args]
    submit = subprocess.Popen(
        [*command, "submit", "add", '{"x": 1, "y": 2}', "--json"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(1.0)  # the submit is up and finds no Scheduler
    assert submit.poll() is None, submit.communicate()
    with open(tmp_path / "scheduler.log", "wb") as log:
        scheduler = subprocess.Popen(
            [*command, "scheduler"], cwd=tmp_path, env=_env(), stdout=log, stderr=log
        )
    try:
        out, err = submit.communicate(timeout=60)
        assert submit.returncode == 0, err
        assert json.loads(out)["created"] is True
        ready = _actorwork(*args, "ping", cwd=tmp_path)
        assert ready.returncode == 0, ready.stderr
        assert f"the Scheduler at {address} answered in " in ready.stdout
    finally:
        scheduler.terminate()
        scheduler.wait(timeout=30)
