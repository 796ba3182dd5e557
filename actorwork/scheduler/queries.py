"""What a Scheduler answers from its jobs: views, pages of the job list, waits.

A mixin of :class:`~actorwork.scheduler.actor.Scheduler`. A job is read from the pure
state while it is live, from the views of jobs finished lately, and else from the
store; a page of the job list merges the store's rows with live jobs not stored yet.
An answer that must not come before the pending batch is durable is queued behind it
(:meth:`Answers._reply_after_commit`); a wait for a job's end that runs out is
answered with the job as it is then.
"""

from __future__ import annotations

from actorwork.messages import JobListReply, JobReply, JobView, ListJobs
from actorwork.runtime import Reply
from actorwork.scheduler.commits import CommitLoop
from actorwork.scheduler.state import Now
from actorwork.scheduler.state import Reply as ReplyEffect

__all__ = ["Answers"]

#: The most jobs one page of a listing holds, whatever the limit asked.
_PAGE = 500


class Answers(CommitLoop):
    """A Scheduler's answers about its jobs; see the module docstring."""

    async def _finished(self, job_id: str) -> bool:
        """Whether a submit's own ``job_id`` names a job that is no longer live.

        Only a submit that chose its id asks; the store is read unless the job
        finished lately. A live job of that id is the pure state's to find.
        """
        if not job_id or job_id in self.state.jobs:
            return False
        if job_id in self._recent:
            return True
        return await self.store.get(job_id) is not None

    async def _view(self, job_id: str) -> JobView | None:
        job = self.state.jobs.get(job_id)
        if job is not None:
            return self.state.view(job)
        recent = self._recent.get(job_id)
        if recent is not None:
            return recent
        job = await self.store.get(job_id)
        return None if job is None else job.view()

    async def _list(self, ask: ListJobs) -> JobListReply:
        """One page of jobs, newest first: the store's, and live ones not stored yet.

        A page holds at most ``_PAGE`` jobs; ``next`` leads to the following one.
        """
        limit = max(0, min(ask.limit, _PAGE))
        before, status, queue = ask.before, ask.status, ask.queue
        stored = await self.store.find(
            status=status,
            queue=queue,
            limit=limit,
            before=before,
            work=ask.work,
            since=ask.since,
            until=ask.until,
            workflow=ask.workflow,
        )
        live = self.state.jobs
        jobs = {job.id: live.get(job.id) or job for job in stored}
        # A full page from the store holds `limit` jobs from `floor` up: an older live job
        # could not make the page. Live jobs go by seq (SchedulerState.jobs), newest
        # last, so a backlog of queued jobs is not walked for every page.
        floor = stored[-1].seq if limit and len(stored) == limit else -1
        for job in reversed(live.values()):
            if job.seq < floor:
                break
            if (
                job.id not in jobs
                and (before is None or job.seq < before)
                and (status is None or job.status == status)
                and (queue is None or job.queue == queue)
                and (ask.work is None or job.work == ask.work)
                and (ask.since is None or job.created >= ask.since)
                and (ask.until is None or job.created < ask.until)
                and (ask.workflow is None or job.workflow == ask.workflow)
            ):
                jobs[job.id] = job
        page = sorted(jobs.values(), key=lambda job: job.seq, reverse=True)[:limit]
        more = len(page) == limit and limit > 0
        count = None
        if ask.count:
            count = await self.store.count(
                status=status,
                queue=queue,
                work=ask.work,
                since=ask.since,
                until=ask.until,
                workflow=ask.workflow,
            )
        return JobListReply(
            [self.state.view(job) for job in page],
            next=page[-1].seq if more else None,
            count=count,
        )

    async def _reply_after_commit(self, job_id: str, view: JobView | None = None) -> None:
        """Answer the current ask with the job's view once the pending batch is durable."""
        handle = self.defer_reply()
        if view is None:
            view = await self._view(job_id)
        self._pending.append(([ReplyEffect(JobReply(view))], handle))
        self._wake.set()

    def _expire_waiters(self, now: Now) -> None:
        """Answer the waiters whose wait is over with the job as it is now."""
        for job_id, handle in self._waiters.expired(now.mono):
            job = self.state.jobs.get(job_id)
            if job is not None:
                handle.resolve(JobReply(self.state.view(job)))
            else:  # finished (or deleted) since the wait began: answer with what is known
                self.start_soon(self._answer, handle, job_id)

    async def _answer(self, handle: Reply, job_id: str) -> None:
        handle.resolve(JobReply(await self._view(job_id)))
