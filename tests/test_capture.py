"""JobCapture: each job's structlog events, logging records and stdout/stderr, kept apart.

pytest swaps ``sys.stdout`` between a test's phases, so every test installs the
proxies inside its own body (``installed()``), over the streams capsys provides.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import sys
from collections.abc import Iterator

import anyio.to_thread
import pytest
import structlog

from actorwork.capture import (
    JobCapture,
    active_capture,
    capture_processor,
    install,
    uninstall,
)
from actorwork.messages import LogLine

LOGGER = "tests.capture"


@contextlib.contextmanager
def installed() -> Iterator[None]:
    install()
    try:
        yield
    finally:
        uninstall()


@contextlib.contextmanager
def root_level(level: int) -> Iterator[None]:
    """The root logger at ``level`` (as in a program that never configured logging)."""
    root = logging.getLogger()
    before = root.level
    root.setLevel(level)
    try:
        yield
    finally:
        root.setLevel(before)


@contextlib.contextmanager
def structlog_config(**settings: object) -> Iterator[None]:
    saved = structlog.get_config()
    structlog.reset_defaults()
    if settings:
        structlog.configure(**settings)  # type: ignore[arg-type]
    try:
        yield
    finally:
        structlog.reset_defaults()
        structlog.configure(**saved)


class ListHandler(logging.Handler):
    """Remembers the messages of the records it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def texts(capture: JobCapture) -> list[tuple[str, str]]:
    return [(line.source, line.text) for line in capture.lines]


@pytest.mark.usefixtures("no_leaks")
async def test_async_jobs_on_one_loop_each_get_exactly_their_lines() -> None:
    log = logging.getLogger(LOGGER)
    turn = {"a": asyncio.Event(), "b": asyncio.Event()}

    async def job(name: str, other: str) -> JobCapture:
        with JobCapture(job_id=name, work="interleave") as capture:
            for step in range(3):
                if name == "b" or step:
                    await turn[name].wait()  # strict alternation: a0 b0 a1 b1 a2 b2
                    turn[name].clear()
                print(f"{name} print {step}")
                log.warning("%s logging %d", name, step)
                capture.logger.info("event", job=name, step=step)
                turn[other].set()
        return capture

    with installed(), root_level(logging.WARNING):
        a, b = await asyncio.gather(job("a", "b"), job("b", "a"))

    for name, capture in (("a", a), ("b", b)):
        expected: list[tuple[str, str]] = []
        for step in range(3):
            expected += [
                ("stdout", f"{name} print {step}"),
                ("logging", f"{name} logging {step}"),
                ("log", "event"),
            ]
        assert texts(capture) == expected
        assert [line.fields["step"] for line in capture.lines if line.source == "log"] == [0, 1, 2]
        times = [line.time for line in capture.lines]
        assert times == sorted(times)


@pytest.mark.usefixtures("no_leaks")
async def test_sync_work_in_threads_is_captured_per_job() -> None:
    log = logging.getLogger(LOGGER)

    def work(name: str) -> None:
        print(f"{name} from a thread")
        print(f"{name} on stderr", file=sys.stderr)
        log.warning("%s warns", name)
        capture = active_capture()
        assert capture is not None
        capture.logger.info("thread_event", name=name)

    async def job(name: str) -> JobCapture:
        with JobCapture(job_id=name, work="threads") as capture:
            await anyio.to_thread.run_sync(work, name)
            await asyncio.to_thread(work, name)
        return capture

    with installed(), root_level(logging.WARNING):
        captures = await asyncio.gather(job("x"), job("y"))

    for name, capture in zip(("x", "y"), captures, strict=True):
        once = [
            ("stdout", f"{name} from a thread"),
            ("stderr", f"{name} on stderr"),
            ("logging", f"{name} warns"),
            ("log", "thread_event"),
        ]
        assert texts(capture) == once + once
        assert capture.lines[1].level == "error"  # stderr


def test_logger_events_carry_level_and_fields() -> None:
    capture = JobCapture(job_id="j1", work="render")
    with capture:
        capture.logger.info("rendering", url="https://example.org", pages=[1, 2])
        capture.logger.bind(step="pdf").warning("slow", seconds=2.5)
        capture.logger.debug("detail")
        empty: dict[str, int] = {}
        try:
            empty["missing"]
        except KeyError:
            capture.logger.exception("lookup_failed")

    first, second, third, fourth = capture.lines
    assert first == LogLine(
        time=first.time,
        source="log",
        level="info",
        text="rendering",
        fields={"job_id": "j1", "work": "render", "url": "https://example.org", "pages": [1, 2]},
    )
    assert (second.level, second.text, second.fields["step"], second.fields["seconds"]) == (
        "warning",
        "slow",
        "pdf",
        2.5,
    )
    assert (third.level, third.text) == ("debug", "detail")
    assert fourth.level == "error"
    assert fourth.text.startswith("lookup_failed\nTraceback (most recent call last):")
    assert "KeyError: 'missing'" in fourth.text
    assert "exc_info" not in fourth.fields


def test_field_values_are_copied_safe_to_encode() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<opaque>"

    mutable = {"n": 1}
    capture = JobCapture(job_id="j", work="w")
    capture.logger.info("values", mapping=mutable, opaque=Opaque(), raw=b"\x00")
    mutable["n"] = 2

    fields = capture.lines[0].fields
    assert fields["mapping"] == {"n": 1}
    assert fields["opaque"] == "<opaque>"
    assert fields["raw"] == b"\x00"


def test_hostile_value_does_not_break_the_capture() -> None:
    class Hostile:
        def __repr__(self) -> str:
            raise RuntimeError("no repr for you")

        def __str__(self) -> str:
            raise RuntimeError("no str either")

    capture = JobCapture(job_id="j", work="w")
    with capture:
        capture.logger.info("hostile", value=Hostile(), values=[Hostile()])
        capture.logger.info(Hostile())  # type: ignore[arg-type]
        capture.logger.info("after")

    hostile, unnamed, after = capture.lines
    assert hostile.fields["value"] == "<Hostile object; repr() raised RuntimeError>"
    assert hostile.fields["values"] == "<list object; repr() raised RuntimeError>"
    assert unnamed.text == "<Hostile object; repr() raised RuntimeError>"
    assert after.text == "after"


def test_logging_records_with_exc_info() -> None:
    log = logging.getLogger(LOGGER)
    with installed(), JobCapture(job_id="j", work="w") as capture:
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            log.exception("division failed for %s", "x")
        log.error("with exc_info", exc_info=ValueError("bad value"))

    failed, explicit = capture.lines
    assert (failed.source, failed.level, failed.fields) == ("logging", "error", {"logger": LOGGER})
    head, _, rest = failed.text.partition("\n")
    assert head == "division failed for x"
    assert rest.startswith("Traceback (most recent call last):")
    assert rest.endswith("ZeroDivisionError: division by zero")
    assert explicit.text == "with exc_info\nValueError: bad value"


def test_logging_info_is_captured_without_showing_outside_jobs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = logging.getLogger()
    # An unconfigured program: no handlers anywhere, so warnings reach lastResort.
    monkeypatch.setattr(root, "handlers", [])
    seen = ListHandler()
    noisy = logging.getLogger(f"{LOGGER}.handled")
    noisy.addHandler(seen)
    try:
        with root_level(logging.WARNING), installed():
            logging.getLogger(LOGGER).info("quiet outside")
            logging.getLogger(LOGGER).warning("loud outside")
            noisy.info("quiet for the handler")
            with JobCapture(job_id="j", work="w") as capture:
                logging.getLogger(LOGGER).info("info inside")
                logging.getLogger(LOGGER).warning("warning inside")
                noisy.info("handler does not see this one either")
                root.info("root info inside")
            assert root.level == logging.INFO
        assert root.level == logging.WARNING
    finally:
        noisy.removeHandler(seen)

    assert texts(capture) == [
        ("logging", "info inside"),
        ("logging", "warning inside"),
        ("logging", "handler does not see this one either"),
        ("logging", "root info inside"),
    ]
    # What the console and the handlers show is what they showed without capturing;
    # the warning lastResort printed inside the job is console output, not a second line.
    assert capsys.readouterr().err == "loud outside\nwarning inside\n"
    assert seen.messages == []
    assert not noisy.filters
    assert not root.filters


def test_loggers_with_their_own_level_keep_it() -> None:
    verbose = logging.getLogger(f"{LOGGER}.verbose")
    verbose.setLevel(logging.DEBUG)
    seen = ListHandler()
    verbose.addHandler(seen)
    try:
        with installed(), JobCapture(job_id="j", work="w") as capture:
            verbose.debug("debug inside")
        verbose.debug("debug outside")
    finally:
        verbose.removeHandler(seen)
        verbose.setLevel(logging.NOTSET)
    assert texts(capture) == [("logging", "debug inside")]
    assert seen.messages == ["debug inside", "debug outside"]


def test_output_outside_any_capture_goes_to_the_original_streams(
    capsys: pytest.CaptureFixture[str],
) -> None:
    original = sys.stdout
    with installed():
        print("plain")
        print("to stderr", file=sys.stderr)
        assert sys.stdout is not original
        assert sys.stdout.encoding == original.encoding
        assert sys.stdout.isatty() is original.isatty()
        with JobCapture(job_id="j", work="w") as capture:
            print("inside")
        print("plain again")
    out, err = capsys.readouterr()
    assert out == "plain\nplain again\n"
    assert err == "to stderr\n"
    assert texts(capture) == [("stdout", "inside")]


def test_partial_lines_are_held_until_newline_or_the_end(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with installed():
        with JobCapture(job_id="j", work="w") as capture:
            sys.stdout.write("ab")
            sys.stderr.write("err ")
            sys.stdout.write("c\nde")
            sys.stdout.writelines(["f", "\n\n", "g"])
            sys.stderr.write("half")
            assert texts(capture) == [("stdout", "abc"), ("stdout", "def"), ("stdout", "")]
        sys.stdout.write("after\n")
    assert texts(capture) == [
        ("stdout", "abc"),
        ("stdout", "def"),
        ("stdout", ""),
        ("stdout", "g"),
        ("stderr", "err half"),
    ]
    assert capsys.readouterr().out == "after\n"


def test_max_lines_keeps_the_first_and_the_last() -> None:
    seen: list[str] = []
    capture = JobCapture(
        job_id="j", work="w", max_lines=5, on_line=lambda line: seen.append(line.text)
    )
    with capture:
        for n in range(12):
            capture.write("stdout", f"line {n}\n")

    assert [line.text for line in capture.lines] == [
        "line 0",
        "line 1",
        "line 10",
        "line 11",
        "8 lines dropped (kept the first 2 and the last 2)",
    ]
    assert capture.lines[-1].fields == {"dropped_lines": 8}
    assert capture.dropped == 8
    assert capture.count == 12
    assert seen == [f"line {n}" for n in range(12)]


def test_max_lines_not_reached_keeps_everything() -> None:
    capture = JobCapture(job_id="j", work="w", max_lines=3)
    for n in range(3):
        capture.add("log", "info", str(n))
    assert [line.text for line in capture.lines] == ["0", "1", "2"]
    assert capture.dropped == 0


def test_long_lines_are_cut() -> None:
    capture = JobCapture(job_id="j", work="w", max_line_length=10)
    with capture:
        capture.write("stdout", "x" * 25 + "\n")
        capture.write("stdout", "y" * 8)
        capture.write("stdout", "y" * 8)  # a line without end is recorded once too long
        capture.write("stdout", "z\n")
    first, second, third = capture.lines
    assert (first.text, first.fields) == ("x" * 10, {"truncated_chars": 15})
    assert (second.text, second.fields) == ("y" * 10, {"truncated_chars": 6})
    assert third.text == "z"


def test_install_and_uninstall_are_idempotent() -> None:
    stdout, stderr = sys.stdout, sys.stderr
    factory = logging.getLogRecordFactory()
    with root_level(logging.WARNING):
        install()
        proxy = sys.stdout
        install()
        assert sys.stdout is proxy
        assert sys.stdout is not stdout
        assert getattr(proxy, "original", None) is stdout
        assert logging.getLogger().level == logging.INFO
        uninstall()
        uninstall()
        assert (sys.stdout, sys.stderr) == (stdout, stderr)
        assert logging.getLogRecordFactory() is factory
        assert logging.getLogger().level == logging.WARNING
        with JobCapture(job_id="j", work="w") as capture:
            proxy.write("a stale reference only forwards\n")
    assert capture.lines == []


def test_uninstall_leaves_what_others_replaced_since(monkeypatch: pytest.MonkeyPatch) -> None:
    with installed():
        replacement = ListHandler()  # any object: uninstall must not touch it
        monkeypatch.setattr(sys, "stdout", replacement)
    assert sys.stdout is replacement


def test_nested_captures() -> None:
    with installed():
        with JobCapture(job_id="outer", work="w") as outer:
            print("outer 1")
            with JobCapture(job_id="inner", work="w") as inner:
                assert active_capture() is inner
                print("inner")
                sys.stdout.write("inner partial")
            assert active_capture() is outer
            print("outer 2")
        assert active_capture() is None
    assert texts(outer) == [("stdout", "outer 1"), ("stdout", "outer 2")]
    assert texts(inner) == [("stdout", "inner"), ("stdout", "inner partial")]


def test_a_closed_capture_takes_no_more_lines(capsys: pytest.CaptureFixture[str]) -> None:
    with installed():
        with JobCapture(job_id="j", work="w") as capture:
            lingering = contextvars.copy_context()  # as a thread still running would hold
        lingering.run(print, "late")
        capture.logger.info("late_event")
    assert capture.lines == []
    assert capsys.readouterr().out == "late\n"


def test_on_line_output_is_not_captured(capsys: pytest.CaptureFixture[str]) -> None:
    with installed():
        capture = JobCapture(job_id="j", work="w", on_line=lambda line: print("seen", line.text))
        with capture:
            print("hello")
    assert texts(capture) == [("stdout", "hello")]
    assert capsys.readouterr().out == "seen hello\n"


def test_echo_writes_to_the_original_streams(capsys: pytest.CaptureFixture[str]) -> None:
    with installed(), JobCapture(job_id="j7", work="render", echo=True) as capture:
        print("shown and kept")
        capture.logger.info("event", n=1)
    out, err = capsys.readouterr()
    assert out == "shown and kept\n"
    assert err == "[render j7] info: event job_id='j7' work='render' n=1\n"
    assert texts(capture) == [("stdout", "shown and kept"), ("log", "event")]


def test_global_structlog_default_configuration_prints_into_the_capture(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with structlog_config(), installed():
        with JobCapture(job_id="j", work="w") as capture:
            structlog.get_logger().info("global_event", answer=42)
        structlog.get_logger().info("outside_event")
    [line] = capture.lines
    assert line.source == "stdout"
    assert "global_event" in line.text
    assert "answer=42" in line.text
    out = capsys.readouterr().out
    assert "outside_event" in out
    assert "global_event" not in out


def test_capture_processor_copies_events_once(capsys: pytest.CaptureFixture[str]) -> None:
    with installed():
        # Configured after install(): the logger writes to the stderr proxy, the case
        # where a rendered event could be recorded twice.
        settings = {
            "processors": [
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                capture_processor,
                structlog.dev.ConsoleRenderer(colors=False),
            ],
            "logger_factory": structlog.PrintLoggerFactory(sys.stderr),
        }
        with structlog_config(**settings):
            log = structlog.get_logger("app")
            with JobCapture(job_id="j", work="w") as capture:
                log.warning("inside_event", size=3)
                print("printed")
            log.info("outside_event")
    assert texts(capture) == [("log", "inside_event"), ("stdout", "printed")]
    assert capture.lines[0].level == "warning"
    assert capture.lines[0].fields == {"size": 3}
    err = capsys.readouterr().err
    assert "inside_event" in err
    assert "outside_event" in err


def test_bad_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="max_lines must be at least 1, got 0"):
        JobCapture(job_id="j", work="w", max_lines=0)
    with pytest.raises(ValueError, match="max_line_length must be at least 1, got -1"):
        JobCapture(job_id="j", work="w", max_line_length=-1)
