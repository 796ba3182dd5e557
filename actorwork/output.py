"""What a running attempt writes and reports, sent to its Pool while it runs.

A :class:`LiveOutput` batches one attempt's log lines, progress and artifact names into
:class:`JobOutput` messages; a Worker's :class:`StartedAlarm` sends the start notice of
an attempt that runs longer than the interval, with one timer for all its attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from collections.abc import Callable

from actorwork.messages import JobOutput, JobSpec, LogLine

__all__ = ["OUTPUT_INTERVAL", "OUTPUT_LINES", "LiveOutput", "StartedAlarm"]

#: Seconds between two :class:`JobOutput` of one attempt, at least (lines past
#: :data:`OUTPUT_LINES` go sooner).
OUTPUT_INTERVAL = 0.05
#: Lines that make a :class:`JobOutput` go at once.
OUTPUT_LINES = 200


class StartedAlarm:
    """One timer for the start notices of many attempts: a Pool's, or one Worker's.

    A :class:`LiveOutput` of its own sets a timer per attempt and cancels it when the
    attempt ends, nearly always first: a timer made and dropped for every job. The
    alarm keeps the attempts it watches in the order they started and rings at the
    first one's due time; it sends the notices that are due, forgets the attempts that
    ended or sent theirs with a batch, and sets itself for the next. It holds at most
    the attempts started within one interval.

    Invariant: every output watched has the same ``interval``, so due times follow the
    order of :meth:`watch` calls.
    """

    __slots__ = ("_loop", "_timer", "_watched")

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._watched: deque[LiveOutput] = deque()

    def watch(self, output: LiveOutput) -> None:
        """On the loop: send ``output``'s start notice once due, unless it went already."""
        due = output.start_notice_due()
        if due is None:
            return
        self._watched.append(output)
        if self._timer is None:
            self._timer = self._loop.call_at(due, self._ring)

    def _ring(self) -> None:
        self._timer = None
        watched, now = self._watched, self._loop.time()
        while watched:
            due = watched[0].start_notice_due()
            if due is not None and due > now:
                self._timer = self._loop.call_at(due, self._ring)
                return
            output = watched.popleft()
            if due is not None:
                output.send_start_notice()


class LiveOutput:
    """Batches what a running attempt writes and reports into :class:`JobOutput` s.

    Lines, progress and artifact names gather; a batch goes at once when none went in
    the last ``interval`` seconds (so a lone progress report arrives without delay),
    else when the interval is over, or at once past ``max_lines`` lines. That the
    attempt started goes with the first batch, or alone after ``interval`` if nothing
    else comes: a job shorter than that sends nothing live (its result says it all).
    Every method may be called from any thread; ``send`` is called on the loop.
    """

    def __init__(
        self,
        spec: JobSpec,
        send: Callable[[JobOutput], None],
        *,
        pool: str = "",
        worker: str = "",
        interval: float = OUTPUT_INTERVAL,
        max_lines: int = OUTPUT_LINES,
        alarm: StartedAlarm | None = None,
    ) -> None:
        if not interval >= 0:
            raise ValueError(f"output interval must be 0 or more seconds, got {interval!r}")
        self.spec = spec
        self.pool = pool
        self.worker = worker
        self.interval = interval
        self.max_lines = max_lines
        self._send = send
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._lock = threading.Lock()
        self._started: float | None = None
        self._lines: list[LogLine] = []
        self._progress: tuple[float | None, str] | None = None
        self._artifacts: list[str] = []
        self._last = -1.0  # loop time of the last batch sent (-1: none yet)
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._alarm = alarm
        self._started_due = 0.0  # loop time the start notice is due, with an alarm

    def started(self, when: float) -> None:
        with self._lock:
            self._started = when
        if self._alarm is not None and threading.get_ident() == self._loop_thread:
            self._started_due = self._loop.time() + self.interval
            self._alarm.watch(self)
        else:
            self._arm(urgent=False, eager=False)

    def start_notice_due(self) -> float | None:
        """On the loop: when the start notice given to an alarm is due, or None if it
        went with a batch already or the attempt ended."""
        if self._closed or self._started is None:
            return None
        return self._started_due

    def line(self, line: LogLine) -> None:
        with self._lock:
            self._lines.append(line)
            urgent = len(self._lines) >= self.max_lines
        self._arm(urgent=urgent, eager=True)

    def progress(self, fraction: float | None, message: str) -> None:
        with self._lock:
            self._progress = (fraction, message)
        self._arm(urgent=False, eager=True)

    def artifact(self, name: str) -> None:
        with self._lock:
            self._artifacts.append(name)
        self._arm(urgent=False, eager=True)

    def send_start_notice(self) -> None:
        """On the loop: the start notice is due; send it with whatever has gathered."""
        self._schedule(urgent=True, eager=True)

    def close(self) -> None:
        """Send nothing more by itself (the attempt ended); on the loop."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def remainder(self) -> JobOutput | None:
        """What is still unsent of an attempt that sent something live, for its worker to
        send before the result (so a tail ends with it); None otherwise: an attempt
        short enough to send nothing live leaves it all to its result."""
        if self._last < 0:
            return None
        return self._take()

    def _arm(self, *, urgent: bool, eager: bool) -> None:
        if threading.get_ident() == self._loop_thread:
            self._schedule(urgent, eager)
        else:
            with contextlib.suppress(RuntimeError):  # the loop closed: nothing to send to
                self._loop.call_soon_threadsafe(self._schedule, urgent, eager)

    def _schedule(self, urgent: bool, eager: bool) -> None:
        """On the loop: send now, or make sure a timer will."""
        if self._closed:
            return
        now = self._loop.time()
        due = self._last + self.interval
        if urgent or (eager and due <= now):
            self._flush()
        elif self._timer is None:
            delay = max(due - now, 0.0) if eager else self.interval
            self._timer = self._loop.call_later(delay, self._flush)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._closed:
            return
        output = self._take()
        if output is not None:
            self._last = self._loop.time()
            self._send(output)

    def _take(self) -> JobOutput | None:
        with self._lock:
            started, self._started = self._started, None
            lines, self._lines = self._lines, []
            progress, self._progress = self._progress, None
            artifacts, self._artifacts = self._artifacts, []
        if started is None and not lines and progress is None and not artifacts:
            return None
        fraction, message = progress if progress is not None else (None, "")
        return JobOutput(
            self.spec.id,
            self.spec.attempt,
            pool=self.pool,
            worker=self.worker,
            started=started,
            logs=lines,
            progressed=progress is not None,
            fraction=fraction,
            message=message,
            artifacts=artifacts,
        )
