"""The command refuses numbers out of bounds before it sends anything (F22).

``--delay 1e308`` used to be accepted and stored, and ``actorwork status`` then crashed
with ``OverflowError``; ``nan`` reached the Scheduler as a timeout. Each is now a usage
error: ``actorwork: error: argument ...`` and status 2, no traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from actorwork.cli.jobs import _summary, format_job
from actorwork.cli.main import build_parser, main
from actorwork.messages import JobView

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        (["submit", "w", "--delay", "nan"], "argument --delay: 'nan' must be finite seconds"),
        (["submit", "w", "--delay", "inf"], "argument --delay: 'inf' must be finite seconds"),
        (["submit", "w", "--delay", "-1"], "argument --delay: '-1' must be finite seconds, 0 or"),
        (["submit", "w", "--delay", "1e308"], "argument --delay: '1e308' is more than 315360000"),
        (["submit", "w", "--timeout", "nan"], "argument --timeout: 'nan' must be finite seconds"),
        (["submit", "w", "--timeout", "0"], "argument --timeout: '0' must be finite seconds, more"),
        (["submit", "w", "--retries", "-1"], "argument --retries: '-1' is not between 0 and"),
        (["submit", "w", "--retries", str(2**63)], f"argument --retries: '{2**63}' is not betw"),
        (["submit", "w", "--priority", str(2**63)], f"argument --priority: '{2**63}' is not be"),
        (["submit", "w", "--priority", "2**63"], "argument --priority: '2**63' is not a whole"),
        (["status", "--limit", str(2**64)], f"argument --limit: '{2**64}' is not between 0 and"),
        (["pool", "--grace", "nan"], "argument --grace: 'nan' must be finite seconds"),
        (["schedules", "--count", "100000"], "argument --count: '100000' is not between 0 and"),
    ],
)
def test_a_number_out_of_bounds_is_a_usage_error_naming_it(
    args: list[str],
    refusal: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # had it been accepted, it would run here
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"actorwork: error: {refusal}" in err, err
    assert "Traceback" not in err


def test_numbers_in_bounds_pass() -> None:
    args = build_parser().parse_args(
        ["submit", "w", "--delay", "0", "--timeout", "1.5", "--retries", "0", "--priority", "-7"]
    )
    assert (args.delay, args.timeout, args.retries, args.priority) == (0.0, 1.5, 0, -7)
    assert build_parser().parse_args(["pool", "--grace", "0"]).grace == 0.0


def test_the_installed_command_refuses_a_delay_of_1e308_without_a_traceback(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "actorwork", "submit", "noop", "--delay", "1e308"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "actorwork: error: argument --delay: '1e308' is more than" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / ".actorwork").exists()  # refused before anything was made


def test_a_stored_time_no_calendar_holds_is_shown_not_raised() -> None:
    """A store written before times were bounded may hold a due time of 1e308."""
    view = JobView(
        id="j",
        work="w",
        queue="default",
        priority=0,
        status="scheduled",
        attempt=0,
        max_attempts=1,
        created=1e308,
        updated=-1e308,
        due=1e308,
    )
    assert "due 1e+308" in _summary(view)
    assert "due      1e+308" in format_job(view)
