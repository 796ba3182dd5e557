"""When schedules fire, as a pure state machine: ``tick(now, running) -> instructions``.

No I/O and no clock of its own: the Scheduler's shell passes the wall-clock time in
and carries the instructions out. :class:`Fire` asks it to submit one job, keyed by
``(schedule, fire_time)``; :class:`Skip` reports fire times that the missed-fire or
overlap policy dropped, for the log; :class:`Fence` only moves a schedule's fence.

The fence is what makes a firing happen once (I7, F18). Every fire time at or before
a schedule's fence is decided. The shell persists ``fence`` from each instruction in
the same transaction as the job it submits, and rebuilds the book after a restart
with :meth:`ScheduleBook.register` and the stored fences. So:

- a restart after the commit does not fire the time again (it is behind the fence);
- a restart before the commit decides it again, with the same unique key and run
  time (both are functions of the schedule and fire time), so nothing doubles either;
- two Schedulers sharing a store emit identical jobs for a fire time, and the store
  keeps one (the unique key; see the integration notes of the issue);
- a wall clock that jumps back never reaches a fire time behind the fence again, and
  one that jumps forward leaves fire times behind ``now``, decided at the next tick by
  the schedule's missed-fire policy.

A fire time is *on time* if the tick that sees it comes at most ``grace`` seconds
after it; any other due fire time was missed. Invariant: every fire time of an
enabled schedule after its registration is decided exactly once, in order.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import msgspec

from actorwork.errors import ScheduleNotFound
from actorwork.schedules import Schedule, fire_times

__all__ = [
    "Fence",
    "Fire",
    "FireReason",
    "Instruction",
    "ScheduleBook",
    "Skip",
    "SkipReason",
    "jitter_offset",
    "parse_unique_key",
    "unique_key",
]

#: ``due``: on time; ``run_once``/``run_all``: a missed fire time run by that policy;
#: ``queued``: held by ``overlap = "queue"`` until the schedule's previous job ended.
FireReason = Literal["due", "run_once", "run_all", "queued"]
#: ``missed``: by ``missed = "skip"``; ``outside_catch_up``: older than ``catch_up``
#: under ``run_all``; ``overlap``: a job of the schedule was live.
SkipReason = Literal["missed", "outside_catch_up", "overlap"]

_KEY_PREFIX = "cron:"
_KEY_TIME = "%Y-%m-%dT%H:%M:%SZ"
_SCAN = 32  # due fire times walked one by one before looking for the latest directly
_TICK = timedelta(microseconds=1)


class Fire(msgspec.Struct, frozen=True, tag="aw.schedule.fire"):
    """Submit one job of ``schedule``, due at ``run_at``, with ``unique_key``.

    Persist ``fence`` as the schedule's fence in the same transaction as the job.
    ``missed_from`` is set when this run stands for several missed fire times
    (``run_once``): the earliest of them. Times are aware, in UTC.
    """

    schedule: str
    fire_time: datetime
    run_at: datetime
    unique_key: str
    reason: FireReason
    fence: datetime
    missed_from: datetime | None = None


class Skip(msgspec.Struct, frozen=True, tag="aw.schedule.skip"):
    """The fire times ``first`` to ``last`` of ``schedule`` do not run: log ``reason``.

    Persist ``fence`` when it is set; it is None for fire times folded into a firing
    that waits (``overlap = "queue"``), whose own Fire moves the fence later.
    """

    schedule: str
    first: datetime
    last: datetime
    reason: SkipReason
    fence: datetime | None


class Fence(msgspec.Struct, frozen=True, tag="aw.schedule.fence"):
    """Persist ``fence`` as the schedule's fence: nothing before it is to run."""

    schedule: str
    fence: datetime


Instruction = Fire | Skip | Fence


def unique_key(schedule: str, fire_time: datetime) -> str:
    """``cron:<schedule>:<fire time in UTC>``; also a valid job id."""
    return f"{_KEY_PREFIX}{schedule}:{fire_time.astimezone(UTC).strftime(_KEY_TIME)}"


def parse_unique_key(key: str) -> tuple[str, datetime] | None:
    """The schedule and fire time of a key made by :func:`unique_key`; None for others."""
    if not key.startswith(_KEY_PREFIX):
        return None
    # Schedule names hold no colon, so the first one after the prefix ends the name.
    name, sep, when = key[len(_KEY_PREFIX) :].partition(":")
    if not sep or not name:
        return None
    try:
        moment = datetime.strptime(when, _KEY_TIME).replace(tzinfo=UTC)
    except ValueError:
        return None
    return name, moment


def jitter_offset(schedule: str, fire_time: datetime, jitter: float) -> timedelta:
    """A delay in ``[0, jitter)`` seconds that depends only on the schedule and fire time.

    Every Scheduler computes the same one, so a firing's job is the same wherever it
    is decided; fire times of one schedule spread over the whole range.
    """
    if jitter <= 0:
        return timedelta(0)
    digest = hashlib.blake2b(unique_key(schedule, fire_time).encode(), digest_size=8).digest()
    fraction = int.from_bytes(digest, "big") / 2**64
    return timedelta(microseconds=int(fraction * jitter * 1_000_000))


@dataclass(slots=True, eq=False)
class _Entry:
    schedule: Schedule
    #: Every fire time at or before it is decided, and the shell was told to persist it.
    fence: datetime
    #: Every fire time at or before it is decided in memory (at or after ``fence``).
    cursor: datetime
    #: The first fire time after ``cursor``; None when disabled or it never fires again.
    next_fire: datetime | None = None
    #: Heap entries of older versions are stale.
    version: int = 0
    #: ``overlap = "queue"``: a decided fire time waiting for the live job to end.
    waiting: datetime | None = None


class ScheduleBook:
    """Every registered schedule, its fence, and a heap of next fire times.

    ``grace`` is how late (seconds) a tick may see a fire time for it to count as on
    time. A tick costs O(log n) per fire time that came due, whatever the number of
    schedules; :meth:`next_due` tells the shell when the next one comes.
    """

    def __init__(self, *, grace: float = 60.0) -> None:
        if not grace >= 0:
            raise ValueError(f"grace must be seconds, 0 or more, got {grace!r}")
        self.grace = timedelta(seconds=grace)
        self._entries: dict[str, _Entry] = {}
        self._heap: list[tuple[float, int, str]] = []
        self._waiting: set[str] = set()

    # --- the schedules -------------------------------------------------------------------

    def register(
        self, schedule: Schedule, now: datetime, *, fence: datetime | None = None
    ) -> list[Instruction]:
        """Add ``schedule``, or replace the one of that name (keeping its fence).

        A new schedule fires only at times after ``fence``: after a restart, the fence
        the store kept; for a schedule never seen, None, which fences it at ``now`` and
        returns the :class:`Fence` to persist (downtime between its registration and a
        restart then counts as missed, not as never registered).
        """
        now = _utc(now)
        old = self._entries.get(schedule.name)
        instructions: list[Instruction] = []
        if fence is not None:
            start = _utc(fence)
        elif old is not None:
            start = old.fence
        else:
            start = now
            instructions.append(Fence(schedule.name, now))
        entry = _Entry(schedule, fence=start, cursor=start)
        if old is not None:
            entry.version = old.version + 1
            entry.cursor = max(start, old.cursor)
            entry.waiting = old.waiting
        self._entries[schedule.name] = entry
        self._waiting.discard(schedule.name)
        if entry.waiting is not None:
            self._waiting.add(schedule.name)
        self._schedule(entry)
        return instructions

    def remove(self, name: str) -> Schedule:
        """Forget the schedule ``name`` (the shell deletes its row and fence)."""
        entry = self._entry(name)
        del self._entries[name]
        self._waiting.discard(name)
        return entry.schedule

    def enable(self, name: str, now: datetime) -> list[Instruction]:
        """Let ``name`` fire again, from ``now`` on: time spent disabled is not missed."""
        entry = self._entry(name)
        if entry.schedule.enabled:
            return []
        now = _utc(now)
        entry.schedule = msgspec.structs.replace(entry.schedule, enabled=True)
        entry.fence = entry.cursor = max(entry.cursor, now)
        self._schedule(entry)
        return [Fence(name, entry.fence)]

    def disable(self, name: str) -> None:
        """Stop ``name`` firing until enabled; a firing that waits is dropped."""
        entry = self._entry(name)
        entry.schedule = msgspec.structs.replace(entry.schedule, enabled=False)
        entry.waiting = None
        self._waiting.discard(name)
        self._schedule(entry)

    def get(self, name: str) -> Schedule:
        return self._entry(name).schedule

    def schedules(self) -> list[Schedule]:
        """Every registered schedule, by name."""
        return [self._entries[name].schedule for name in sorted(self._entries)]

    def fence(self, name: str) -> datetime:
        """The latest decided fire time persisted for ``name`` (or where it was fenced)."""
        return self._entry(name).fence

    def next_fire(self, name: str) -> datetime | None:
        """The next fire time of ``name`` not yet decided (UTC); None when disabled."""
        return self._entry(name).next_fire

    def waiting(self) -> dict[str, datetime]:
        """Firings held by ``overlap = "queue"``: schedule name -> fire time."""
        return {name: w for name in self._waiting if (w := self._entries[name].waiting)}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    # --- time -------------------------------------------------------------------------------

    def next_due(self) -> datetime | None:
        """The earliest undecided fire time of any enabled schedule: when to tick next.

        A firing held by ``overlap = "queue"`` is not in it: tick when a job of a
        schedule in :meth:`waiting` ends.
        """
        heap = self._heap
        while heap:
            _, version, name = heap[0]
            entry = self._entries.get(name)
            if entry is not None and entry.version == version and entry.next_fire is not None:
                return entry.next_fire
            heapq.heappop(heap)
        return None

    def tick(self, now: datetime, running: Collection[str] = ()) -> list[Instruction]:
        """Decide every fire time up to ``now``; release held firings no longer blocked.

        ``running`` names the schedules that have a live job (scheduled, queued or
        running): the overlap policy needs it. Instructions come in the order of their
        fire times per schedule.
        """
        now = _utc(now)
        instructions: list[Instruction] = []
        released = {name for name in self._waiting if name not in running}
        for name in sorted(released):
            instructions.append(self._release(self._entries[name]))
        limit = now.timestamp()
        heap = self._heap
        while heap and heap[0][0] <= limit:
            _, version, name = heapq.heappop(heap)
            entry = self._entries.get(name)
            if entry is None or entry.version != version or entry.next_fire is None:
                continue  # removed, disabled or replaced since this was pushed
            decided, following = self._decide(entry, now, name in running or name in released)
            instructions += decided
            self._schedule(entry, following)
        return instructions

    # --- internals -------------------------------------------------------------------------

    def _entry(self, name: str) -> _Entry:
        entry = self._entries.get(name)
        if entry is None:
            known = ", ".join(sorted(self._entries)[:20]) or "none"
            raise ScheduleNotFound(f"no schedule {name!r} (known: {known})", key="name")
        return entry

    def _schedule(self, entry: _Entry, following: datetime | None = None) -> None:
        """Push the next fire time after the cursor (``following``, if known).

        The version bump makes every earlier push of this entry stale.
        """
        entry.version += 1
        entry.next_fire = None
        if entry.schedule.enabled:
            entry.next_fire = following or next(fire_times(entry.schedule, entry.cursor), None)
        if entry.next_fire is not None:
            heapq.heappush(
                self._heap, (entry.next_fire.timestamp(), entry.version, entry.schedule.name)
            )

    def _decide(
        self, entry: _Entry, now: datetime, live: bool
    ) -> tuple[list[Instruction], datetime | None]:
        """Every fire time of ``entry`` in (cursor, now], by its missed and overlap policies.

        Also the first fire time after ``now``, when finding the due ones met it.
        """
        s = entry.schedule
        due, following = _due(s, entry.cursor, now)
        if not due:
            return [], following
        first, latest = due[0], due[-1]
        on_time = now - latest <= self.grace
        out: list[Instruction] = []
        runs: list[tuple[datetime, FireReason, datetime | None]] = []
        if s.missed == "run_once":
            collapsed = first if first < latest else None
            reason: FireReason = "due" if on_time and collapsed is None else "run_once"
            runs.append((latest, reason, collapsed))
        elif s.missed == "skip":
            missed = due[:-1] if on_time else due
            if missed:
                out.append(Skip(s.name, first, missed[-1], "missed", missed[-1]))
            if on_time:
                runs.append((latest, "due", None))
        else:
            window = _window(now, s.catch_up)
            start = entry.cursor
            if window is not None and first < window:
                old = _latest(s, entry.cursor, window - _TICK) or first
                out.append(Skip(s.name, first, old, "outside_catch_up", old))
                start = old
            for t in _between(s, start, now):
                runs.append((t, "due" if t == latest and on_time else "run_all", None))
        for t, reason, collapsed in runs:
            if not live or s.overlap == "allow":
                out.append(self._fire(entry, t, reason, t, collapsed))
                live = True
            elif s.overlap == "skip":
                _skip(out, Skip(s.name, t, t, "overlap", t))
            elif entry.waiting is None:
                entry.waiting = t
                self._waiting.add(s.name)
            else:
                _skip(out, Skip(s.name, t, t, "overlap", None))
        for instruction in out:
            if instruction.fence is not None and instruction.fence > entry.fence:
                entry.fence = instruction.fence
        entry.cursor = latest
        return out, following

    def _release(self, entry: _Entry) -> Fire:
        """The held firing of ``entry``, now that no job of its schedule is live."""
        held = entry.waiting
        assert held is not None
        entry.waiting = None
        self._waiting.discard(entry.schedule.name)
        entry.fence = max(entry.fence, entry.cursor)
        return self._fire(entry, held, "queued", entry.fence, None)

    def _fire(
        self,
        entry: _Entry,
        t: datetime,
        reason: FireReason,
        fence: datetime,
        collapsed: datetime | None,
    ) -> Fire:
        name = entry.schedule.name
        return Fire(
            schedule=name,
            fire_time=t,
            run_at=t + jitter_offset(name, t, entry.schedule.jitter),
            unique_key=unique_key(name, t),
            reason=reason,
            fence=fence,
            missed_from=collapsed,
        )


def _due(s: Schedule, cursor: datetime, now: datetime) -> tuple[list[datetime], datetime | None]:
    """Fire times in (cursor, now]: all if few, else the first few and the latest.

    Enough for every policy: ``run_once`` and ``skip`` need the first and the latest,
    ``run_all`` walks its window itself. After a long downtime a schedule every
    second would otherwise be walked through each missed second. Second: the first
    fire time after ``now`` if the walk met it (it saves a walk when rescheduling).
    """
    head: list[datetime] = []
    for t in fire_times(s, cursor):
        if t > now:
            return head, t
        head.append(t)
        if len(head) == _SCAN:
            break
    latest = _latest(s, head[-1], now) if head else None
    return (head if latest is None else [*head, latest]), None


def _latest(s: Schedule, after: datetime, upto: datetime) -> datetime | None:
    """The latest fire time in (after, upto], looking back a widening window at a time."""
    span = timedelta(minutes=1)
    while True:
        start = max(after, upto - span)
        last = None
        for t in _between(s, start, upto):
            last = t
        if last is not None or start == after:
            return last
        span *= 64


def _between(s: Schedule, after: datetime, upto: datetime) -> Iterator[datetime]:
    for t in fire_times(s, after):
        if t > upto:
            return
        yield t


def _window(now: datetime, catch_up: float) -> datetime | None:
    """The oldest fire time ``run_all`` still runs; None for a window without end."""
    try:
        return now - timedelta(seconds=catch_up)
    except OverflowError:
        return None


def _skip(out: list[Instruction], skip: Skip) -> None:
    """Append ``skip``, folding it into the previous one when that is its twin."""
    if out and isinstance(prev := out[-1], Skip) and prev.reason == skip.reason:
        out[-1] = Skip(prev.schedule, prev.first, skip.last, skip.reason, skip.fence)
    else:
        out.append(skip)


def _utc(t: datetime) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"time {t!r} has no time zone; pass an aware datetime")
    return t.astimezone(UTC)
