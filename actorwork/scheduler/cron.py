"""The Scheduler's cron: schedules in, jobs and store effects out.

:class:`~actorwork.scheduler.cron_state.ScheduleBook` decides when each schedule fires;
this module turns its instructions into what the Scheduler carries out: a job per
firing, keyed (id and unique key) by ``(schedule, fire_time)``, and a
:class:`~actorwork.scheduler.state.SetFence` committed in the same transaction, so a
fire time fires once across restarts and takeovers (I7). It also keeps the count of
live jobs per schedule that the overlap policies need, and loads the schedules kept
in the store and given in the config.

Like :mod:`actorwork.scheduler.state` it does no I/O: the wall time comes in as
:class:`~actorwork.scheduler.state.Now`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

import msgspec

from actorwork._log import get_logger
from actorwork.errors import ScheduleError, WorkNotFound
from actorwork.messages import ScheduleView
from actorwork.scheduler.cron_state import Fence, Fire, ScheduleBook, Skip, parse_unique_key
from actorwork.scheduler.state import (
    DropSchedule,
    Effect,
    Job,
    Now,
    SaveSchedule,
    SetFence,
)
from actorwork.schedules import Schedule, next_fire_times
from actorwork.work import WorkRegistry

__all__ = ["Cron"]

log = get_logger(__name__)

_decoder = msgspec.msgpack.Decoder(Schedule)
_encoder = msgspec.msgpack.Encoder()

#: Where a schedule came from: the config file (kept in step with it at every start)
#: or a client (kept until removed).
CONFIG, API = "config", "api"


class Cron:
    """Every schedule of one Scheduler, and the jobs they have live.

    ``submit`` queues a job in the Scheduler's state and returns its effects;
    ``next_seq`` gives the job its place in the queues.
    """

    def __init__(
        self,
        registry: WorkRegistry,
        submit: Callable[[Job, Now], list[Effect]],
        next_seq: Callable[[], int],
        *,
        grace: float = 60.0,
    ) -> None:
        self.registry = registry
        self.book = ScheduleBook(grace=grace)
        self._submit = submit
        self._next_seq = next_seq
        self._sources: dict[str, str] = {}
        #: Live (not finished) jobs per schedule: what the overlap policies look at.
        self._live: Counter[str] = Counter()

    # --- loading ------------------------------------------------------------------------

    def load(
        self,
        stored: Iterable[tuple[bytes, str, float | None]],
        configured: Sequence[Schedule],
        jobs: Iterable[Job],
        now: Now,
    ) -> list[Effect]:
        """Register the stored schedules and the configured ones, with their fences.

        The config's definition of a schedule wins over a stored one, except that one
        disabled at runtime stays disabled until enabled again; a schedule that came
        from the config and is no longer in it is dropped (removing it at runtime
        lasts until the next start: the config is where it lives). Every configured
        schedule must name a registered work (ScheduleError otherwise, naming both).
        """
        for schedule in configured:
            self._check_work(schedule)
        names = {schedule.name for schedule in configured}
        fences: dict[str, float | None] = {}
        disabled: set[str] = set()
        effects: list[Effect] = []
        for definition, source, fence in stored:
            try:
                schedule = _decoder.decode(definition)
            except (msgspec.DecodeError, ScheduleError) as exc:
                log.error("schedule_unreadable", error=str(exc), source=source)
                continue
            fences[schedule.name] = fence
            if schedule.name in names:
                if not schedule.enabled:
                    disabled.add(schedule.name)
                continue
            if source == CONFIG:
                effects.append(DropSchedule(schedule.name))
                log.info("schedule_dropped", schedule=schedule.name, reason="not in the config")
                continue
            effects += self._register(schedule, API, fence, now)
        for given in configured:
            schedule = (  # disabled at runtime: it stays so until enabled
                msgspec.structs.replace(given, enabled=False) if given.name in disabled else given
            )
            effects.append(SaveSchedule(schedule.name, _encoder.encode(schedule), CONFIG))
            effects += self._register(schedule, CONFIG, fences.get(schedule.name), now)
        for job in jobs:
            name = _schedule_of(job.id)
            if name is not None:
                self._live[name] += 1
        return effects

    # --- changes from clients -------------------------------------------------------------

    def add(self, schedule: Schedule, now: Now) -> list[Effect]:
        """Add or replace a schedule (a replaced one keeps its fence)."""
        self._check_work(schedule)
        return [
            SaveSchedule(schedule.name, _encoder.encode(schedule), API),
            *self._register(schedule, API, None, now),  # the book keeps a replaced one's fence
        ]

    def remove(self, name: str) -> list[Effect]:
        self.book.remove(name)  # ScheduleNotFound if unknown
        self._sources.pop(name, None)
        return [DropSchedule(name)]

    def enable(self, name: str, enabled: bool, now: Now) -> list[Effect]:
        """Let ``name`` fire again from now on, or stop it; the changed row is saved."""
        if enabled:
            fences = _fences(self.book.enable(name, _wall(now)))
        else:
            self.book.disable(name)
            fences = []
        schedule = self.book.get(name)
        source = self._sources.get(name, API)
        return [SaveSchedule(name, _encoder.encode(schedule), source), *fences]

    def views(self, now: Now, count: int = 3, name: str | None = None) -> list[ScheduleView]:
        """Every schedule (or the one ``name``, if it exists) with its fence and next
        ``count`` fire times (UTC timestamps)."""
        waiting = self.book.waiting()
        views = []
        if name is None:
            schedules = self.book.schedules()
        else:
            schedules = [self.book.get(name)] if name in self.book else []
        for schedule in schedules:
            fence = self.book.fence(schedule.name)
            upcoming = (
                next_fire_times(schedule, max(fence, _wall(now)), count) if schedule.enabled else []
            )
            views.append(
                ScheduleView(
                    schedule=schedule,
                    source=self._sources.get(schedule.name, API),
                    fence=fence.timestamp(),
                    next_fires=[t.timestamp() for t in upcoming],
                    waiting=schedule.name in waiting,
                    live=self._live[schedule.name],
                )
            )
        return views

    # --- time -------------------------------------------------------------------------------

    def next_due(self) -> float | None:
        """When the next fire time comes (a UTC timestamp); None if none is coming."""
        due = self.book.next_due()
        return None if due is None else due.timestamp()

    def tick(self, now: Now) -> list[Effect]:
        """Fire what is due: a job and a fence for each firing, a fence for each skip."""
        running = {name for name, count in self._live.items() if count > 0}
        effects: list[Effect] = []
        for instruction in self.book.tick(_wall(now), running):
            match instruction:
                case Fire():
                    effects += self._fire(instruction, now)
                case Skip(schedule=name, first=first, last=last, reason=reason, fence=fence):
                    log.info(
                        "schedule_skipped",
                        schedule=name,
                        first=first.isoformat(),
                        last=last.isoformat(),
                        reason=reason,
                    )
                    if fence is not None:
                        effects.append(SetFence(name, fence.timestamp()))
                case Fence(schedule=name, fence=fence):
                    effects.append(SetFence(name, fence.timestamp()))
        return effects

    def finished(self, job_id: str) -> bool:
        """Note that a job ended; True if it was a schedule's (so a held firing may go)."""
        name = _schedule_of(job_id)
        if name is None or self._live[name] == 0:
            return False
        self._live[name] -= 1
        return name in self.book.waiting()

    # --- internals -------------------------------------------------------------------------

    def _register(
        self, schedule: Schedule, source: str, fence: float | None, now: Now
    ) -> list[Effect]:
        at = None if fence is None else datetime.fromtimestamp(fence, UTC)
        self._sources[schedule.name] = source
        return _fences(self.book.register(schedule, _wall(now), fence=at))

    def _check_work(self, schedule: Schedule) -> None:
        try:
            self.registry.get(schedule.work)
        except WorkNotFound as exc:
            raise ScheduleError(f"schedule {schedule.name!r}: {exc}", key="work") from exc

    def _fire(self, fire: Fire, now: Now) -> list[Effect]:
        schedule = self.book.get(fire.schedule)
        job = self._job(schedule, fire, now)
        log.info(
            "schedule_fired",
            schedule=schedule.name,
            fire_time=fire.fire_time.isoformat(),
            run_at=fire.run_at.isoformat(),
            reason=fire.reason,
            job_id=job.id,
        )
        self._live[schedule.name] += 1
        return [*self._submit(job, now), SetFence(schedule.name, fire.fence.timestamp())]

    def _job(self, schedule: Schedule, fire: Fire, now: Now) -> Job:
        """The job of one firing: the schedule's overrides, else the work's defaults."""
        work = self.registry.get(schedule.work) if schedule.work in self.registry else None
        queue, priority, retries, timeout = (
            (work.queue, work.priority, work.retries, work.timeout)
            if work
            else ("default", 0, 0, None)
        )
        run_at = fire.run_at.timestamp()
        return Job(
            id=fire.unique_key,
            work=schedule.work,
            queue=schedule.queue or queue,
            priority=priority if schedule.priority is None else schedule.priority,
            payload=schedule.payload,
            status="queued",
            attempt=0,
            max_attempts=(retries if schedule.retries is None else schedule.retries) + 1,
            created=now.wall,
            updated=now.wall,
            seq=self._next_seq(),
            timeout=timeout if schedule.timeout is None else schedule.timeout,
            unique_key=fire.unique_key,
            due=run_at if run_at > now.wall else None,
        )


def _fences(instructions: Iterable[object]) -> list[Effect]:
    return [SetFence(i.schedule, i.fence.timestamp()) for i in instructions if isinstance(i, Fence)]


def _schedule_of(job_id: str) -> str | None:
    parsed = parse_unique_key(job_id)
    return None if parsed is None else parsed[0]


def _wall(now: Now) -> datetime:
    return datetime.fromtimestamp(now.wall, UTC)
