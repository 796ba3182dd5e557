"""actorwork used as a library: its events are the application's to show or not.

With no logging configured, a program using actorwork prints only what it prints
itself; the library's warnings still reach stderr (Python's ``logging.lastResort``).
An application that configures structlog or :mod:`logging` hears the library there.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from actorwork._log import get_logger

ROOT = Path(__file__).resolve().parents[1]


def _readme_tour() -> str:
    """The README's first python block (the tour), as written."""
    blocks = re.findall(r"^```python\n(.*?)^```", (ROOT / "README.md").read_text(), re.S | re.M)
    return str(blocks[0])


def _run(script: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ACTORWORK_") and key != "PYTHONWARNINGS"
    }
    (cwd / "script.py").write_text(script)
    return subprocess.run(
        [sys.executable, "script.py"],
        cwd=cwd,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def unconfigured() -> Iterator[None]:
    """structlog as an application that never configured it sees it; restored after."""
    saved = structlog.get_config()
    was_configured = structlog.is_configured()
    structlog.reset_defaults()
    try:
        yield
    finally:
        structlog.reset_defaults()
        if was_configured:
            structlog.configure(**saved)


def test_the_readme_tour_prints_only_what_the_script_prints(tmp_path: Path) -> None:
    (tmp_path / "actorwork.toml").write_text(
        f'[scheduler]\nstore = "{tmp_path}/jobs.db"\n\n'
        f'[pools.default]\noutbox = "{tmp_path}/outbox"\n'
    )
    tour = _readme_tour()
    if "asyncio.run(main())" not in tour:
        tour += "\n\nimport asyncio\n\nasyncio.run(main())\n"
    done = _run(tour, tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch("[0-9a-f]{32}", lines[0])  # print(handle.id)
    assert lines[1] == "42"  # print(await handle.result(...))
    # then one printed line per log line of the job: its structlog event and its print
    assert len(lines) == 4, done.stdout
    assert lines[2].startswith("log info fetching {")
    assert "'url': 'https://example.org'" in lines[2]
    assert lines[3] == "stdout info stdout is kept too {}"
    assert done.stderr == ""  # debug and info events are silent too


def test_a_library_warning_reaches_stderr_and_stdout_stays_empty(tmp_path: Path) -> None:
    script = """
from pathlib import Path

from actorwork.pool.outbox import Outbox

Outbox(Path("box"), fsync=False).put("k:1", b"x" * 100)
segment = next(Path("box").glob("segment-*.log"))
blob = bytearray(segment.read_bytes())
blob[-10] ^= 0xFF
segment.write_bytes(bytes(blob))
Outbox(Path("box")).open()
"""
    done = _run(script, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    [warning] = [line for line in done.stderr.splitlines() if line]
    assert warning.startswith("outbox_segment_quarantined path=")
    assert "reason='checksum mismatch'" in warning


def test_without_structlog_configured_events_are_logging_records(
    unconfigured: None, caplog: pytest.LogCaptureFixture
) -> None:
    log = get_logger("actorwork.test").bind(system="s")
    with caplog.at_level(logging.DEBUG, logger="actorwork"):
        log.debug("system_started", address="inproc://x")
        try:
            raise ZeroDivisionError("boom")
        except ZeroDivisionError:
            log.exception("actor_failed")
    started, failed = caplog.records
    assert started.name == "actorwork.test"
    assert started.levelno == logging.DEBUG
    assert started.getMessage() == "system_started system='s' address='inproc://x'"
    assert started.funcName == "test_without_structlog_configured_events_are_logging_records"
    assert failed.levelno == logging.ERROR
    assert failed.getMessage() == "actor_failed system='s'"
    assert failed.exc_info is not None
    assert failed.exc_info[0] is ZeroDivisionError


def test_with_structlog_configured_events_go_through_it(unconfigured: None) -> None:
    log = get_logger("actorwork.test").bind(system="s")  # bound before configuring
    with capture_logs() as logs:
        log.info("system_started", address="inproc://x")
    assert logs == [
        {
            "event": "system_started",
            "system": "s",
            "address": "inproc://x",
            "log_level": "info",
        }
    ]


def test_a_logger_is_assembled_once_per_structlog_configuration(unconfigured: None) -> None:
    """Filtered events cost no new structlog logger each (the Scheduler logs one a job);
    configuring structlog again, or changing its processors in place, still applies."""
    made: list[str] = []

    def factory(*args: object) -> structlog.types.WrappedLogger:
        made.append("logger")
        return structlog.ReturnLogger()

    seen: list[str] = []

    def keep(_: object, __: str, event: structlog.types.EventDict) -> str:
        seen.append(str(event["event"]))
        raise structlog.DropEvent

    structlog.configure(
        processors=[keep],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=factory,
    )
    log = get_logger("actorwork.test_quiet")
    for _ in range(3):
        log.debug("job_finished", job_id="j")
        log.info("job_started", job_id="j")
    assert made == ["logger"]
    assert seen == ["job_started"] * 3

    seen.clear()
    structlog.get_config()["processors"].insert(0, lambda _, __, event: {**event, "event": "x"})
    log.info("changed_in_place")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    log.debug("configured_again")
    assert seen == ["x", "x"]
    assert made == ["logger", "logger"]


def test_a_log_call_never_fails_its_caller_when_the_output_is_gone(tmp_path: Path) -> None:
    """An application configured structlog to a stream since closed: the call goes on."""
    from actorwork._log import get_logger

    stream = (tmp_path / "closed.log").open("w")
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(stream))
    stream.close()
    try:
        get_logger("actorwork.test_quiet").warning("connection_expired", peer="p")
    finally:
        structlog.reset_defaults()
