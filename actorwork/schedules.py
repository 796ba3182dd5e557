"""Cron schedules: what a schedule is, when it fires, and how one is read from config.

Pure: no I/O, no clock, no asyncio. The decisions about firing (fences, missed fire
times, overlap, jitter) live in :mod:`actorwork.scheduler.cron_state`.

A :class:`Schedule` is a frozen msgspec Struct, so it travels on the wire and goes
into the store as it is; it is checked whenever it is made or decoded, and an invalid
one raises :class:`~actorwork.errors.ScheduleError` naming the value::

    nightly = schedule("weekday-report", "reports.build", "0 5 * * mon-fri",
                       timezone="Europe/London", payload={"kind": "daily"})
    next_fire_times(nightly, datetime.now(UTC), 3)

Cron expressions are parsed and walked by ``cronsim``: five fields (minute, hour, day
of month, month, day of week), or six with a leading seconds field, plus ``L``, ``W``,
``#`` and the ``@daily`` family of shorthands. Fire times are computed in the
schedule's IANA time zone, and across DST changes they follow Debian cron:

- A schedule whose minute and hour fields are both fixed (``0 5 * * *``,
  ``30 1,13 * * *``; with or without seconds) keeps its local time: 05:00 Europe/London
  is 05:00 GMT in winter and 05:00 BST in summer. A local time that does not exist
  (01:30 on the day clocks go forward) fires once, at the end of the gap (02:00 BST);
  a local time that exists twice (01:30 on the day they go back) fires once, at its
  first occurrence (01:30 BST).
- Any other schedule (``*/15 * * * *``, ``0 * * * *``) follows elapsed time: it fires
  at every real instant whose local reading matches, so an hourly schedule fires at
  both 01:00 BST and 01:00 GMT on the day clocks go back, and never at the local times
  that the spring change skips.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from cronsim import CronSim, CronSimError

from actorwork.errors import ConfigError, ScheduleError, UsageError

if TYPE_CHECKING:
    from actorwork.work import Work

__all__ = [
    "MissedPolicy",
    "OverlapPolicy",
    "Schedule",
    "fire_times",
    "next_fire_times",
    "schedule",
    "schedule_from_config",
    "schedules_from_config",
]

MissedPolicy = Literal["run_once", "run_all", "skip"]
OverlapPolicy = Literal["allow", "skip", "queue"]
MISSED_POLICIES: tuple[str, ...] = get_args(MissedPolicy)
OVERLAP_POLICIES: tuple[str, ...] = get_args(OverlapPolicy)

#: Letters, digits, ``_ . -``: a name fits in a unique key and a job id (128 chars).
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,100}")
#: The bounds of :mod:`actorwork.messages` (which imports this module), so a schedule
#: fires only jobs a submit could ask for: priorities, retries, seconds.
_MAX_INT = 2**31 - 1
_MAX_ATTEMPTS = 1_000_000
_MAX_SECONDS = 10 * 365 * 86400.0
_MAX_NAME = 256
_NIL = b"\xc0"  # MessagePack for None: the payload of work that takes none
_SHORTHANDS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}


class Schedule(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="aw.schedule"):
    """A named cron schedule that submits ``work`` with ``payload`` at each fire time.

    ``payload`` is the MessagePack encoding of the work's payload (:func:`schedule`
    encodes a value). ``jitter`` (seconds, 0 or more) delays each run by an offset that
    depends only on the schedule's name and the fire time, so every Scheduler computes
    the same run time. ``missed`` says what happens to fire times that passed while no
    Scheduler was looking (downtime, a wall clock jump forward):

    - ``run_once`` (the default): one run, for the latest of them. A daily report is
      not lost to a restart at 05:00, and a schedule every minute does not flood the
      queues with stale work after an hour down; whoever wants each one opts in to
      ``run_all``.
    - ``run_all``: one run for each that is at most ``catch_up`` seconds old; older
      ones are skipped.
    - ``skip``: none of them; only fire times that are on time run.

    ``overlap`` says what a fire time does while a job of this schedule is still live
    (scheduled, queued or running): ``allow`` runs anyway (what cron does, the
    default), ``skip`` drops it, ``queue`` holds one firing until the live job ends
    (further fire times meanwhile fold into it). ``queue``, ``priority``, ``retries``
    and ``timeout`` override the work's registered defaults when given.
    """

    name: str
    work: str
    cron: str
    timezone: str = "UTC"
    payload: bytes = _NIL
    jitter: float = 0.0
    enabled: bool = True
    missed: MissedPolicy = "run_once"
    catch_up: float = 3600.0
    overlap: OverlapPolicy = "allow"
    queue: str | None = None
    priority: int | None = None
    retries: int | None = None
    timeout: float | None = None

    def __post_init__(self) -> None:
        _check(self)


def schedule(
    name: str,
    work: Work | str,
    cron: str,
    *,
    payload: Any = None,
    **options: Any,
) -> Schedule:
    """A checked :class:`Schedule`, its ``payload`` value encoded as MessagePack.

    With a :class:`~actorwork.work.Work` the payload is checked against its payload
    type first (a :class:`~actorwork.errors.PayloadError` if it does not fit).
    ``options`` are the other fields of :class:`Schedule`.
    """
    if isinstance(work, str):
        try:
            encoded = msgspec.msgpack.encode(payload)
        except (TypeError, msgspec.EncodeError) as exc:
            raise ScheduleError(f"schedule {name!r}: payload cannot be encoded: {exc}") from exc
        return Schedule(name, work, cron, payload=encoded, **options)
    return Schedule(name, work.name, cron, payload=work.encode_payload(payload), **options)


# --- checks ---------------------------------------------------------------------------


def _check(s: Schedule) -> None:
    """Raise ScheduleError naming the first field of ``s`` that is not valid, and its value."""
    if not isinstance(s.name, str) or not _NAME.fullmatch(s.name):
        reason = f"name {s.name!r} must be 1-100 letters, digits or '_', '.', '-'"
        raise ScheduleError(f"schedule {reason}", key="name", reason=reason)
    problem = _problem(s)
    if problem is not None:
        key, reason = problem
        raise ScheduleError(f"schedule {s.name!r}: {reason}", key=key, reason=reason)


def _problem(s: Schedule) -> tuple[str, str] | None:
    if not isinstance(s.work, str) or not 0 < len(s.work) <= _MAX_NAME:
        return "work", f"work {s.work!r} must name a registered work"
    try:
        _compile(s.cron, s.timezone)
    except ScheduleError as exc:
        return exc.key, exc.reason
    if not _number(s.jitter) or not 0 <= s.jitter <= _MAX_SECONDS:
        return "jitter", f"jitter {s.jitter!r} must be seconds, 0 to {_MAX_SECONDS:.0f}"
    if s.missed not in MISSED_POLICIES:
        return "missed", f"missed {s.missed!r} is not one of: {', '.join(MISSED_POLICIES)}"
    if not _number(s.catch_up) or not s.catch_up > 0:
        return "catch_up", f"catch_up {s.catch_up!r} must be seconds, more than 0"
    if s.overlap not in OVERLAP_POLICIES:
        return "overlap", f"overlap {s.overlap!r} is not one of: {', '.join(OVERLAP_POLICIES)}"
    if s.queue is not None and (not isinstance(s.queue, str) or not 0 < len(s.queue) <= _MAX_NAME):
        return "queue", f"queue {s.queue!r} must be a queue name"
    if s.priority is not None and (
        not isinstance(s.priority, int) or not -_MAX_INT - 1 <= s.priority <= _MAX_INT
    ):
        return "priority", f"priority {s.priority!r} must be an integer of 32 bits"
    if s.retries is not None and (
        not isinstance(s.retries, int) or not 0 <= s.retries < _MAX_ATTEMPTS
    ):
        return "retries", f"retries {s.retries!r} must be 0 to {_MAX_ATTEMPTS - 1}"
    if s.timeout is not None and (not _number(s.timeout) or not 0 < s.timeout <= _MAX_SECONDS):
        return "timeout", f"timeout {s.timeout!r} must be seconds, more than 0"
    return None


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


@dataclass(frozen=True)
class _Cron:
    """A checked expression: six fields (seconds first) and how it meets DST."""

    expr: str
    zone: tzinfo
    #: Minute and hour both fixed: walk local wall time (see the module docstring).
    local: bool


@functools.lru_cache(maxsize=4096)
def _compile(cron: str, zone_name: str) -> _Cron:
    """The checked expression; ScheduleError naming ``cron`` or ``zone_name`` if invalid."""
    zone = _zone(zone_name)
    if not isinstance(cron, str):
        raise _cron_error(f"cron {cron!r} must be a string")
    expr = _SHORTHANDS.get(cron.strip().lower(), cron)
    fields = expr.split()
    if len(fields) not in (5, 6):
        raise _cron_error(
            f"cron {cron!r} has {len(fields)} fields; give five "
            "(minute hour day-of-month month day-of-week) or six (seconds first)"
        )
    if len(fields) == 5:
        fields.insert(0, "0")
    six = " ".join(fields)
    try:
        first = next(CronSim(six, datetime(2000, 1, 1)), None)
    except CronSimError as exc:
        raise _cron_error(f"cron {cron!r} is not valid: {exc}") from None
    if first is None:
        raise _cron_error(f"cron {cron!r} never fires")
    local = zone is not UTC and not fields[1].startswith("*") and not fields[2].startswith("*")
    return _Cron(six, zone, local)


def _zone(name: str) -> tzinfo:
    if name in ("UTC", "Etc/UTC"):
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):  # OSError: a long name
        reason = (
            f"time zone {name!r} is not a known IANA zone "
            "(like 'UTC', 'Europe/London', 'America/New_York')"
        )
        raise ScheduleError(reason, key="timezone", reason=reason) from None


def _cron_error(reason: str) -> ScheduleError:
    return ScheduleError(reason, key="cron", reason=reason)


# --- fire times -------------------------------------------------------------------------


def fire_times(s: Schedule, after: datetime) -> Iterator[datetime]:
    """Every fire time of ``s`` strictly after ``after`` (aware), in order, in UTC.

    Strictly increasing: several local times that map to one instant (a gap) fire
    once. Ends only if the expression stops matching for 50 years.
    """
    cron = _compile(s.cron, s.timezone)
    after = _aware(after).astimezone(UTC)
    last = after
    for t in _walk(cron, after):
        if t > last:
            last = t
            yield t


def next_fire_times(s: Schedule, after: datetime, n: int = 1) -> list[datetime]:
    """The next ``n`` fire times of ``s`` after ``after``, in the schedule's time zone."""
    zone = _compile(s.cron, s.timezone).zone
    times: list[datetime] = []
    for t in fire_times(s, after):
        if len(times) >= n:
            break
        times.append(t.astimezone(zone))
    return times


def _walk(cron: _Cron, after: datetime) -> Iterator[datetime]:
    """Candidate fire times in UTC, not yet filtered to be increasing and after ``after``."""
    if not cron.local:
        # Elapsed time: cronsim steps real instants and matches their local reading.
        start = after if cron.zone is UTC else after.astimezone(cron.zone)
        for t in CronSim(cron.expr, start):
            yield t.astimezone(UTC)
        return
    # Local wall time: walk naive local readings, then place each on the time line.
    # Taking the first occurrence of a repeated reading keeps the mapping monotonic.
    zone = cron.zone
    for naive in CronSim(cron.expr, after.astimezone(zone).replace(tzinfo=None)):
        yield _place(naive, zone)


def _place(naive: datetime, zone: tzinfo) -> datetime:
    """The first instant at or after the local reading ``naive`` (the gap's end if none)."""
    placed = naive.replace(tzinfo=zone, fold=0)
    if _exists(placed):
        return placed.astimezone(UTC)
    step = naive.replace(second=0)
    while True:  # zone changes fall on whole minutes; a gap is at most a day long
        step += timedelta(minutes=1)
        placed = step.replace(tzinfo=zone, fold=0)
        if _exists(placed):
            return placed.astimezone(UTC)


def _exists(local: datetime) -> bool:
    return local.astimezone(UTC).astimezone(local.tzinfo).replace(tzinfo=None) == local.replace(
        tzinfo=None
    )


def _aware(t: datetime) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise UsageError(f"time {t!r} has no time zone; pass an aware datetime")
    return t


# --- config -------------------------------------------------------------------------------


_KEYS = frozenset(Schedule.__struct_fields__) - {"name"}


def schedule_from_config(name: str, table: Mapping[str, Any], *, source: str = "") -> Schedule:
    """A :class:`Schedule` from the ``[schedules.NAME]`` table of a config file.

    ``payload`` is a TOML value (encoded as MessagePack); the other keys are the
    fields of :class:`Schedule`. Errors are :class:`~actorwork.errors.ConfigError`
    naming ``source``, ``schedules.NAME.key`` and the value::

        [schedules.weekday-report]
        work = "reports.build"
        cron = "0 5 * * mon-fri"
        timezone = "Europe/London"
        payload = { kind = "daily" }
    """
    prefix = f"{source}: " if source else ""
    where = f"schedules.{name}"
    if not isinstance(table, Mapping):
        raise ConfigError(f"{prefix}{where} = {table!r} must be a table")
    for key in table:
        if key not in _KEYS:
            raise ConfigError(
                f"{prefix}{where}.{key} is not a schedule setting "
                f"(known: {', '.join(sorted(_KEYS))})"
            )
    for key in ("work", "cron"):
        if key not in table:
            raise ConfigError(f"{prefix}{where}.{key} is missing")
    fields = dict(table)
    try:
        fields["payload"] = msgspec.msgpack.encode(fields.get("payload"))
        return msgspec.convert({"name": name, **fields}, Schedule, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_explain(exc, prefix, where, table)) from None
    except (TypeError, msgspec.EncodeError) as exc:
        raise ConfigError(f"{prefix}{where}.payload cannot be encoded: {exc}") from None


def schedules_from_config(tables: Mapping[str, Any], *, source: str = "") -> list[Schedule]:
    """Every schedule of a config file's ``[schedules]`` table, in file order."""
    return [schedule_from_config(name, table, source=source) for name, table in tables.items()]


def _explain(
    exc: msgspec.ValidationError, prefix: str, where: str, table: Mapping[str, Any]
) -> str:
    """Name the key and the value at fault, as config.py does for the other tables."""
    cause = exc.__cause__
    if isinstance(cause, ScheduleError) and cause.key in table:
        key, problem = cause.key, cause.reason
    else:
        problem, _, at = str(exc).partition(" - at `")
        key = at.rstrip("`").removeprefix("$.").split(".")[0].split("[")[0]
    choices = {"missed": MISSED_POLICIES, "overlap": OVERLAP_POLICIES}.get(key)
    if choices and "one of" not in problem:
        problem += f" (choices: {', '.join(choices)})"
    if key in table:
        return f"{prefix}{where}.{key} = {table[key]!r}: {problem}"
    return f"{prefix}{where}: {problem}"
