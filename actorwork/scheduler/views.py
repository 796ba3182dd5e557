"""What the Scheduler's pure state tells of itself: job views, queues, pools, deadlines.

A mixin of :class:`~actorwork.scheduler.state.SchedulerState`, reading only: a job's
view says why it is not dispatched (its parents, its limit, a paused queue, no pool
that can run it); the views of queues and pools are what operators list.
"""

from __future__ import annotations

import msgspec

from actorwork.clock import Now
from actorwork.messages import JobView, PoolView, QueueView, RunningAttempt
from actorwork.scheduler.pools import PoolSlot
from actorwork.stores.base import Job

__all__ = ["Views"]


class Views:
    """Readings of the state; see the module docstring."""

    # Fields of SchedulerState, where each is described.
    jobs: dict[str, Job]
    pools: dict[str, PoolSlot]
    paused: set[str]
    _held_why: dict[str, str]
    _running: dict[str, int]
    _leases: list[tuple[float, str, int]]
    _due: list[tuple[float, int, str]]

    def view(self, job: Job) -> JobView:
        """The job's view, saying why a job waits: for parents, a limit or a pool."""
        view = job.view()
        waiting = self.waiting_for(job)
        return msgspec.structs.replace(view, waiting=waiting) if waiting else view

    def waiting_for(self, job: Job) -> str:
        """Why a job is not dispatched: the parents a waiting job waits for, the limit
        that holds a queued one, or that no connected pool can run it; else ""."""
        if job.status == "waiting":
            pending = [p for p in job.depends_on if p not in job.parents]
            names = ", ".join(repr(p) for p in pending[:3])
            more = f" and {len(pending) - 3} more" if len(pending) > 3 else ""
            return f"waits for {names}{more} to have {job.when}"
        if job.status != "queued":
            return ""
        held = self._held_why.get(job.id)
        if held is not None:
            return held
        if job.queue in self.paused:
            return f"queue {job.queue!r} is paused"
        if any(s.connected and s.runs(job.queue, job.work) for s in self.pools.values()):
            return ""
        return f"waits for a pool with work {job.work!r} on queue {job.queue!r}"

    def running_under(self, key: str) -> int:
        """How many running jobs count against the limit ``key``."""
        return self._running.get(key, 0)

    def queues(self, now: Now) -> list[QueueView]:
        """Every queue with live jobs, a pool serving it, or paused, by name."""
        names = set(self.paused)
        for slot in self.pools.values():
            names.update(slot.queues)
        counts: dict[str, dict[str, int]] = {}
        oldest: dict[str, float] = {}
        for job in self.jobs.values():
            names.add(job.queue)
            by_status = counts.setdefault(job.queue, {})
            by_status[job.status] = by_status.get(job.status, 0) + 1
            if job.status == "queued":
                oldest[job.queue] = min(oldest.get(job.queue, job.updated), job.updated)
        views = []
        for name in sorted(names):
            by_status = counts.get(name, {})
            views.append(
                QueueView(
                    name=name,
                    queued=by_status.get("queued", 0),
                    running=by_status.get("running", 0),
                    scheduled=by_status.get("scheduled", 0),
                    retrying=by_status.get("retrying", 0),
                    oldest_age=max(0.0, now.wall - oldest[name]) if name in oldest else 0.0,
                    paused=name in self.paused,
                )
            )
        return views

    def pool_views(self, now: Now) -> list[PoolView]:
        """Every pool that introduced itself, with its running attempts, by name."""
        busy: dict[str, list[RunningAttempt]] = {}
        for job in self.jobs.values():
            if job.status == "running" and job.pool is not None:
                busy.setdefault(job.pool, []).append(
                    RunningAttempt(
                        job_id=job.id,
                        work=job.work,
                        queue=job.queue,
                        attempt=job.attempt,
                        since=job.updated,
                    )
                )
        return [
            PoolView(
                name=slot.name,
                queues=list(slot.queues),
                works=None if slot.works is None else sorted(slot.works),
                connected=slot.connected,
                capacity=slot.capacity,
                free=slot.credit,
                busy=sorted(busy.get(slot.name, []), key=lambda a: a.since),
                heartbeat_age=max(0.0, now.mono - slot.heard),
                backlog=slot.backlog,
            )
            for slot in sorted(self.pools.values(), key=lambda s: s.name)
        ]

    def next_deadline(self) -> tuple[float | None, float | None]:
        """The earliest lease end (monotonic) and the earliest due time (wall), if any."""
        lease = self._leases[0][0] if self._leases else None
        due = self._due[0][0] if self._due else None
        return lease, due
