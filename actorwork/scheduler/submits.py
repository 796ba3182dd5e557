"""What clients ask a Scheduler to change: submits, cancels, retries, deletes, expansions.

A submit is checked against the registered work (its name, its payload, its attempts
and timeout) and made a :class:`~actorwork.scheduler.state.Job` with the work's
defaults filled in (:func:`new_job`, :func:`build_job`); a job with parents learns how
those that ended did, and is refused if one is unknown. :class:`Submits`, a mixin of
:class:`~actorwork.scheduler.actor.Scheduler`, handles batched submits, cancel, retry
and delete (each answered once stored), and adds the nodes a workflow's expander
decided on before its result is applied.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable

import msgspec

from actorwork.errors import ActorworkError, JobNotFound, PayloadError, WorkNotFound
from actorwork.events import JobDeleted
from actorwork.messages import (
    TERMINAL,
    CancelJob,
    DeleteJob,
    JobReply,
    Message,
    RetryJob,
    SubmitJob,
    SubmitRefusedReply,
    WorkResult,
)
from actorwork.scheduler.queries import Answers
from actorwork.scheduler.state import Finished, Forget, Job, Now
from actorwork.scheduler.waiters import Gather, Slot
from actorwork.work import WorkRegistry
from actorwork.workflow import EXPAND, Expansion

__all__ = ["RETRYABLE", "Submits", "build_job", "new_job", "new_job_id"]

_expansion = msgspec.msgpack.Decoder(Expansion)

#: The statuses of a job a retry runs again.
RETRYABLE = ("dead", "failed", "cancelled", "skipped")

# Job ids are 128 random bits in hex, like a uuid4's, from a generator seeded by the OS
# (again in a forked child): a uuid4 asks the kernel for every id, which costs more than
# the rest of a no-op job's submit. Ids need to be unique, not unguessable.
_ids = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _ids.seed(os.urandom(32)))


def new_job_id() -> str:
    """A fresh job id: 32 hex digits."""
    return f"{_ids.getrandbits(128):032x}"


def new_job(
    registry: WorkRegistry, message: SubmitJob, now: Now, next_seq: Callable[[], int]
) -> Job | SubmitRefusedReply:
    """The job a submit asks for, or why it is refused (see :func:`build_job`)."""
    try:
        return build_job(registry, message, now, next_seq)
    except (WorkNotFound, PayloadError, ValueError) as exc:
        return SubmitRefusedReply(type(exc).__name__, str(exc))


def build_job(
    registry: WorkRegistry, message: SubmitJob, now: Now, next_seq: Callable[[], int]
) -> Job:
    """The job a submit asks for, its sequence number from ``next_seq`` once it is valid.

    Raises :class:`~actorwork.errors.WorkNotFound`, :class:`~actorwork.errors.PayloadError`
    or :class:`ValueError`, naming what is wrong.
    """
    work = registry.get(message.work)
    work.decode_payload(message.payload)
    max_attempts = message.max_attempts if message.max_attempts is not None else work.max_attempts
    if max_attempts < 1:
        raise ValueError(f"max_attempts must be at least 1, got {max_attempts!r}")
    timeout = message.timeout if message.timeout is not None else work.timeout
    if timeout is not None and timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout!r}")
    if message.when not in ("succeeded", "finished", "failed"):
        raise ValueError(f"when must be 'succeeded', 'finished' or 'failed', got {message.when!r}")
    return Job(
        id=message.job_id or new_job_id(),
        work=work.name,
        queue=message.queue or work.queue,
        priority=message.priority if message.priority is not None else work.priority,
        payload=message.payload,
        status="queued",
        attempt=0,
        max_attempts=max_attempts,
        created=now.wall,
        updated=now.wall,
        seq=next_seq(),
        timeout=timeout,
        unique_key=message.unique_key,
        due=message.due,
        context=dict(message.context),
        depends_on=tuple(dict.fromkeys(message.depends_on)),
        when=message.when,
        workflow=message.workflow,
        path=message.path,
        policy=message.policy,
        limit_key=work.limit_key(message.payload),
        limit=work.limit,
    )


class Submits(Answers):
    """A Scheduler's handling of what clients change; see the module docstring."""

    # Set by Scheduler.__init__, where each is described.
    registry: WorkRegistry
    _pruned: set[str]

    async def _parents(self, job: Job) -> SubmitRefusedReply | None:
        """Fill in how the parents of a new job that ended did; refuse unknown parents."""
        state = self.state
        if not job.depends_on or job.id in state.jobs:
            return None
        unknown = [p for p in job.depends_on if p not in state.jobs and state.outcome(p) is None]
        if unknown:
            stored = await self.store.outcomes(unknown)
            job.parents.update(stored)
            unknown = [p for p in unknown if p not in stored and p not in state.jobs]
        if unknown:
            names = ", ".join(repr(p) for p in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            return SubmitRefusedReply(
                JobNotFound.__name__, f"depends_on names unknown jobs: {names}{more}"
            )
        return None

    async def _submit_many(self, submits: list[SubmitJob], now: Now) -> None:
        handle = self.defer_reply()
        gather = None if handle is None else Gather(handle, len(submits))
        for index, submit in enumerate(submits):
            slot = None if gather is None else Slot(gather, index)
            finished = await self._finished(submit.job_id)
            job = new_job(self.registry, submit, now, self.state.next_seq)
            if not isinstance(job, SubmitRefusedReply) and not finished:
                job = await self._parents(job) or job
            if not isinstance(job, SubmitRefusedReply):
                self._apply(self.state.submit(job, now, finished=finished), slot)
            elif slot is not None:
                slot.resolve(job)

    async def _change(self, message: CancelJob | RetryJob | DeleteJob, now: Now) -> Message | None:
        """Cancel, retry or delete a job; answered with its view once that is stored."""
        state, job_id = self.state, message.job_id
        match message:
            case CancelJob(reason=reason) if job_id in state.jobs:
                effects = state.cancel(job_id, reason, now)
                self._apply(effects, None)
                final = next(e.view for e in effects if isinstance(e, Finished))
                await self._reply_after_commit(job_id, final)
                return None
            case RetryJob() if job_id not in state.jobs:
                stored = await self.store.get(job_id)
                if job_id in self._pruned:
                    stored = None
                if stored is not None and stored.status in RETRYABLE:
                    await self._parents(stored)  # how those that ended did, for its gate
                    self._apply(state.revive(stored, now), None)
                    await self._reply_after_commit(job_id)
                    return None
            case DeleteJob():
                view = await self._view(job_id)
                if view is not None and view.status in TERMINAL:
                    self._apply([Forget(job_id)], None)
                    if self.subscribers:
                        deleted = JobDeleted(job_id=job_id, work=view.work, queue=view.queue)
                        self._unpublished.append(deleted)
                    await self._reply_after_commit(job_id, view)
                    return None
            case _:
                pass
        return JobReply(await self._view(job_id))

    def _expand(self, result: WorkResult, now: Now) -> WorkResult:
        """Add the nodes a workflow's expander decided on, before its result is applied,
        so the group's gathering node waits for them when the expander ends; the result
        is made a failure if they cannot be added (named in its error)."""
        job = self.state.jobs[result.job_id]
        current = job.status == "running" and job.attempt == result.attempt
        if job.work != EXPAND or not current or result.value is None:
            return result
        try:
            expansion = _expansion.decode(result.value)
            jobs = [
                build_job(self.registry, submit, now, self.state.next_seq)
                for submit in expansion.jobs
            ]
            skipped = [
                build_job(self.registry, submit, now, self.state.next_seq)
                for submit in expansion.skipped
            ]
        except (msgspec.DecodeError, msgspec.ValidationError, ActorworkError, ValueError) as exc:
            error = f"workflow node {job.path!r} could not add its nodes: {exc}"
            return msgspec.structs.replace(result, outcome="failed", value=None, error=error)
        for child in jobs:
            # Its parents are the expander, live, or the node before it, whose outcome
            # the expander's own gate learnt.
            child.parents.update((p, job.parents[p]) for p in child.depends_on if p in job.parents)
            self._apply(self.state.submit(child, now), None)
        for child in skipped:
            self._apply(self.state.skip(child, expansion.reason, now), None)
        self._apply(self.state.extend(expansion.gather, expansion.tails, now), None)
        return result
