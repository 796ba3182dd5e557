"""The dependency graph of the Scheduler's pure state: parents, children, workflows.

A job submitted with ``depends_on`` is ``waiting`` until each parent
ended; it then goes on if they ended as its ``when`` asks, or ends ``skipped`` (naming
the parent and how it ended) as soon as one parent can no longer satisfy it — and so,
transitively, do the jobs waiting on it. Parents exist before their children, so the
graph has no cycle. A child carries its parents' return values to its worker.
A failed node of a workflow whose policy is ``stop`` ends the workflow's other nodes.
:class:`Graph` is a mixin of :class:`~actorwork.scheduler.state.SchedulerState`, which
holds the fields it works on (declared here, set there).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from actorwork.clock import Now
from actorwork.messages import TERMINAL, JobStatus
from actorwork.scheduler.effects import Effect, Finished
from actorwork.stores.base import Job, Persist

__all__ = ["Graph", "blocks", "skip_reason"]

#: How many finished jobs' outcomes the state remembers for children submitted later
#: (older ones the shell reads from the store).
_ENDED = 10_000


def blocks(when: str, status: str) -> bool:
    """Whether a parent that ended ``status`` keeps a child of ``when`` from running."""
    if when == "succeeded":
        return status != "succeeded"
    if when == "failed":
        return status not in ("failed", "dead")
    return False


def skipped_because(parent: str, status: str, when: str) -> str:
    return f"parent {parent!r} ended {status}; this job runs when its parents {when}"


def skip_reason(job: Job) -> str:
    """Why ``job`` can no longer run as its ``when`` asks, given its parents so far; or ""."""
    for parent in job.depends_on:
        known = job.parents.get(parent)
        if known is not None and blocks(job.when, known[0]):
            return skipped_because(parent, known[0], job.when)
    return ""


class Graph:
    """Jobs waiting on jobs, and how an end travels through them; see the module docstring."""

    # Fields of SchedulerState, where each is described.
    jobs: dict[str, Job]
    _unique: dict[str, str]
    _children: dict[str, list[str]]
    _ended: OrderedDict[str, tuple[str, bytes | None]]
    _flows: dict[str, set[str]]
    _held_why: dict[str, str]
    # Methods of SchedulerState and its other parts.
    _go: Callable[..., list[Effect]]
    _wake: Callable[[Now], list[Effect]]
    _release: Callable[[Job, str | None], None]
    cancel: Callable[[str, str, Now], list[Effect]]

    def extend(self, job_id: str, parents: list[str], now: Now) -> list[Effect]:
        """Make the waiting job ``job_id`` wait for ``parents`` too (the nodes a
        workflow's expansion added before its gathering node). Nothing if it is not
        waiting any more."""
        job = self.jobs.get(job_id)
        if job is None or job.status != "waiting":
            return []
        added = [p for p in dict.fromkeys(parents) if p not in job.depends_on]
        job.depends_on += tuple(added)
        for parent in added:
            if parent in self.jobs:
                self._children.setdefault(parent, []).append(job.id)
            else:
                job.parents[parent] = self._ended.get(parent, ("unknown", None))
        job.updated = now.wall
        return [Persist(job)]

    def _finish(self, job: Job, status: JobStatus, now: Now) -> list[Effect]:
        """End ``job``; the jobs waiting on it learn how, and go on or are skipped.

        Skips spread through the graph by a work list, not recursion: a chain of
        thousands of jobs ends in one call.
        """
        effects = self._end(job, status, now)
        ended = [job]
        while ended:
            parent = ended.pop()
            outcome = (parent.status, self._value(parent))
            for child_id in self._children.pop(parent.id, ()):
                child = self.jobs.get(child_id)
                if child is None or child.status != "waiting" or parent.id in child.parents:
                    continue
                # Only this parent's outcome is new: a fan-in of n parents costs O(n).
                child.parents[parent.id] = outcome
                if blocks(child.when, parent.status):
                    child.error = skipped_because(parent.id, parent.status, child.when)
                    ended.append(child)
                    effects += self._end(child, "skipped", now)
                elif len(child.parents) >= len(child.depends_on):
                    child.updated = now.wall
                    effects += [Persist(child), *self._go(child, now, dispatch=False)]
        if status in ("failed", "dead") and job.policy == "stop":
            effects += self._stop_workflow(job, now)
        return effects + self._wake(now)

    def _stop_workflow(self, failed: Job, now: Now) -> list[Effect]:
        """A node of a ``stop`` workflow failed: its running nodes are cancelled, the
        others that have not ended are skipped, naming the node that failed."""
        effects: list[Effect] = []
        reason = f"workflow {failed.workflow!r} stopped: node {failed.path!r} ended {failed.status}"
        for job_id in sorted(self._flows.get(failed.workflow, ())):
            job = self.jobs.get(job_id)
            if job is None:
                continue  # ended with a node ended before it
            job.error = reason
            if job.status == "running":
                effects += self.cancel(job_id, reason, now)
            else:
                effects += self._finish(job, "skipped", now)
        return effects

    def _end(self, job: Job, status: JobStatus, now: Now) -> list[Effect]:
        assert status in TERMINAL
        job.status, job.updated, job.due = status, now.wall, None
        self._release(job, None)
        del self.jobs[job.id]
        if job.workflow:
            live = self._flows.get(job.workflow)
            if live is not None:
                live.discard(job.id)
                if not live:
                    del self._flows[job.workflow]
        self._held_why.pop(job.id, None)
        self._ended[job.id] = (status, self._value(job))
        if len(self._ended) > _ENDED:
            self._ended.popitem(last=False)
        if job.unique_key is not None and self._unique.get(job.unique_key) == job.id:
            del self._unique[job.unique_key]
        return [Persist(job), Finished(job.view())]

    @staticmethod
    def _value(job: Job) -> bytes | None:
        return None if job.result is None else job.result.value

    def _gate(self, job: Job, now: Now) -> list[Effect]:
        """Decide a new or reloaded job with parents: skip it, let it wait, or go on.

        A parent neither live nor known to have ended is unknown (forgotten since):
        it cannot satisfy the job.
        """
        for parent in job.depends_on:
            if parent in job.parents or parent in self.jobs:
                continue
            known = self._ended.get(parent)
            job.parents[parent] = known if known is not None else ("unknown", None)
        reason = skip_reason(job)
        if reason:
            job.error = reason
            return self._finish(job, "skipped", now)
        pending = [p for p in job.depends_on if p not in job.parents]
        if pending:
            if job.status != "waiting":
                job.status, job.updated = "waiting", now.wall
            for parent in pending:
                children = self._children.setdefault(parent, [])
                if not children or children[-1] != job.id:
                    children.append(job.id)
            return [Persist(job)]
        job.updated = now.wall
        return [Persist(job), *self._go(job, now)]
