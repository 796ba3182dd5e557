"""What an operator asks of a Scheduler: readiness, queues, pools, readings, schedules.

A mixin of :class:`~actorwork.scheduler.actor.Scheduler`: listing and pausing queues,
listing pools, the readings of :class:`~actorwork.messages.StatsReply`, changing and
listing cron schedules and running one now. A change is answered once it is stored.
"""

from __future__ import annotations

from collections import Counter
from typing import assert_never

from actorwork.errors import ScheduleError
from actorwork.messages import (
    AddSchedule,
    EnableSchedule,
    GetStats,
    JobCount,
    ListPools,
    ListQueues,
    ListSchedules,
    Message,
    PauseQueue,
    Ping,
    Pong,
    PoolListReply,
    QueueListReply,
    RemoveSchedule,
    RunSchedule,
    ScheduleListReply,
    StatsReply,
    SubmitJob,
    SubmitRefusedReply,
)
from actorwork.scheduler.commits import log
from actorwork.scheduler.queries import Answers
from actorwork.scheduler.state import Now
from actorwork.scheduler.state import Reply as ReplyEffect
from actorwork.scheduler.submits import new_job
from actorwork.work import WorkRegistry

__all__ = ["Operations"]


class Operations(Answers):
    """A Scheduler's answers to its operators; see the module docstring."""

    # Set by Scheduler.__init__, where each is described.
    registry: WorkRegistry
    _loop_lag: float

    async def _operate(
        self,
        message: ListQueues | PauseQueue | ListPools | GetStats | RunSchedule | Ping,
        now: Now,
    ) -> Message | None:
        """What an operator asks: readiness, queues (and pausing them), pools, readings,
        run a schedule now."""
        state = self.state
        match message:
            case Ping(payload=payload):  # readiness: answered only while this one leads
                return Pong(payload)
            case ListQueues():
                return QueueListReply(state.queues(now))
            case PauseQueue(queue=queue, paused=paused):
                # Answered once stored: a Scheduler restarted after the answer keeps it.
                effects = state.pause(queue, paused, now)
                view = QueueListReply([q for q in state.queues(now) if q.name == queue])
                self._apply([*effects, ReplyEffect(view)], self.defer_reply())
                log.info("queue_paused" if paused else "queue_resumed", queue=queue)
                return None
            case ListPools():
                return PoolListReply(state.pool_views(now))
            case GetStats():
                return self._stats()
            case RunSchedule(name=name):
                return await self._run_schedule(name, now)
            case _:
                assert_never(message)

    def _stats(self) -> StatsReply:
        readings = self.state.readings
        live: Counter[tuple[str, str, str]] = Counter(
            (job.work, job.queue, job.status) for job in self.state.jobs.values()
        )
        return StatsReply(
            live=[JobCount(*key, count) for key, count in sorted(live.items())],
            finished=[
                JobCount(*key, count) for key, count in sorted(self._finished_counts.items())
            ],
            commits=self._commits,
            commit_seconds=self._commit_seconds,
            commit_last=self._commit_last,
            loop_lag=self._loop_lag,
            commit_times=readings.commits.timings(),
            queue_waits=readings.listed(readings.queue_waits),
            run_times=readings.listed(readings.run_times),
        )

    async def _run_schedule(self, name: str, now: Now) -> Message | None:
        """Submit schedule ``name``'s job now, as a client's submit of its work would be."""
        if name not in self.cron.book:
            return SubmitRefusedReply(
                "ScheduleNotFound", f"no schedule {name!r} is known to the scheduler"
            )
        schedule = self.cron.book.get(name)
        submit = SubmitJob(
            work=schedule.work,
            payload=schedule.payload,
            queue=schedule.queue,
            priority=schedule.priority,
            max_attempts=None if schedule.retries is None else schedule.retries + 1,
            timeout=schedule.timeout,
        )
        job = new_job(self.registry, submit, now, self.state.next_seq)
        if isinstance(job, SubmitRefusedReply):
            return job
        log.info("schedule_run_now", schedule=name, job_id=job.id)
        self._apply(self.state.submit(job, now), None)
        await self._reply_after_commit(job.id)
        return None

    def _schedules(
        self, message: AddSchedule | RemoveSchedule | EnableSchedule | ListSchedules, now: Now
    ) -> Message | None:
        """Change or list the cron schedules; a change is answered once it is stored."""
        cron = self.cron
        try:
            match message:
                case AddSchedule(schedule=schedule):
                    effects, name = cron.add(schedule, now), schedule.name
                case RemoveSchedule(name=name):
                    effects = cron.remove(name)
                case EnableSchedule(name=name, enabled=enabled):
                    effects = cron.enable(name, enabled, now)
                case ListSchedules(count=count):
                    return ScheduleListReply(cron.views(now, count))
                case _:
                    assert_never(message)
        except ScheduleError as exc:
            return SubmitRefusedReply(type(exc).__name__, str(exc))
        self._apply(effects, None)
        views = cron.views(now, name=name)
        self._pending.append(([ReplyEffect(ScheduleListReply(views))], self.defer_reply()))
        self._wake.set()
        return None
