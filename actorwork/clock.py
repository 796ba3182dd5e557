"""Where time comes from: an injectable clock with two readings that never mix.

``monotonic()`` is for durations: leases, heartbeats, timeouts, timers. It never goes
backwards and ignores wall-clock changes, so a lease lasts its length even while NTP
or an operator moves the calendar (F18).

``wall()`` is for the calendar: due times, cron fire times, what a person reads. It is
an aware datetime in UTC and may jump either way; code that keeps calendar promises
(:mod:`actorwork.scheduler.cron_state`) fences what it already did so a jump back does not
repeat it and a jump forward does not lose it.

Code takes a :class:`Clock` and reads it at the edge; decisions get the readings as
arguments. :class:`SystemClock` is the real one and :func:`system_now` its reading as a
:class:`Now` (what the Scheduler and the Pool take as their clock); :class:`ManualClock`
moves only when a test says so, the two readings independently::

    clock = ManualClock(wall=datetime(2025, 3, 28, 4, 59, tzinfo=UTC))
    clock.advance(60)                     # both readings move a minute
    clock.jump_wall(timedelta(hours=-1))  # the calendar goes back; monotonic does not
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "ManualClock", "Now", "SystemClock", "system_clock", "system_now"]


@runtime_checkable
class Clock(Protocol):
    """A source of both readings; what every component that needs time accepts."""

    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards, from an arbitrary origin."""
        ...

    def wall(self) -> datetime:
        """The calendar time now: an aware datetime in UTC. May jump either way."""
        ...


@dataclass(frozen=True)
class Now:
    """One reading of both clocks, in seconds: what a pure decision is given as "now".

    ``mono`` is :meth:`Clock.monotonic` (leases, heartbeats, deadlines); ``wall`` is
    :meth:`Clock.wall` as a UTC timestamp (due times, records).
    """

    mono: float
    wall: float

    @classmethod
    def read(cls, clock: Clock) -> Now:
        """Both readings of ``clock``, taken now."""
        return cls(clock.monotonic(), clock.wall().timestamp())


class SystemClock:
    """The process's clocks: :func:`time.monotonic` and the system's UTC time."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> datetime:
        return datetime.now(UTC)

    def __repr__(self) -> str:
        return "SystemClock()"


#: The one real clock; components default to it.
system_clock = SystemClock()


def system_now() -> Now:
    """Now, by the system's clocks: the default clock of the Scheduler and the Pool.

    The same readings as ``Now.read(system_clock)``, without the datetime in between.
    """
    return Now(time.monotonic(), time.time())


class ManualClock:
    """A clock for tests: it stands still until told to move.

    ``wall`` must be aware (any zone; it is kept in UTC). The monotonic reading only
    moves forward; the wall reading can be set or jumped anywhere, as a real wall
    clock can.
    """

    def __init__(self, *, monotonic: float = 0.0, wall: datetime | None = None) -> None:
        self._mono = float(monotonic)
        self._wall = _utc(datetime(2025, 1, 1, tzinfo=UTC) if wall is None else wall)

    def monotonic(self) -> float:
        return self._mono

    def wall(self) -> datetime:
        return self._wall

    def advance(self, seconds: float | timedelta) -> None:
        """Let time pass: both readings move forward by ``seconds``."""
        step = _seconds(seconds)
        self.advance_monotonic(step)
        self._wall += timedelta(seconds=step)

    def advance_monotonic(self, seconds: float | timedelta) -> None:
        """Move only the monotonic reading forward (the calendar stands still)."""
        step = _seconds(seconds)
        if step < 0:
            raise ValueError(f"a monotonic clock cannot go back, got {seconds!r}")
        self._mono += step

    def jump_wall(self, delta: float | timedelta) -> None:
        """Move only the wall reading, either way: an NTP step or a hand-set clock."""
        self._wall += timedelta(seconds=_seconds(delta))

    def set_wall(self, wall: datetime) -> None:
        """Set the wall reading to ``wall`` (aware), leaving the monotonic one alone."""
        self._wall = _utc(wall)

    def __repr__(self) -> str:
        return f"ManualClock(monotonic={self._mono!r}, wall={self._wall.isoformat()!r})"


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _utc(wall: datetime) -> datetime:
    if wall.tzinfo is None or wall.utcoffset() is None:
        raise ValueError(f"wall time {wall!r} has no time zone; pass an aware datetime")
    return wall.astimezone(UTC)
