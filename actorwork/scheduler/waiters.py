"""Who waits for which job, and the replies the Scheduler owes them.

Clients long-poll (:class:`~actorwork.messages.AwaitJob`): the Scheduler keeps the
reply handle until the job finishes or the wait runs out. :class:`Waiters` holds those
handles with a heap of deadlines; :class:`Gather` and :class:`Slot` make one reply of
the replies to the submits of a :class:`~actorwork.messages.SubmitJobs`.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Iterator
from typing import Any

from actorwork.messages import SubmitJobsReply, SubmitRefusedReply, SubmittedReply
from actorwork.runtime import Reply

__all__ = ["Gather", "Slot", "Waiters"]


class Waiters:
    """Reply handles waiting for jobs to finish, each until its deadline.

    Deadlines are a lazy heap: the entry of a waiter answered early (its job finished)
    stays until it comes up or until such entries are most of the heap, when they are
    dropped all at once. Waits are long (a client's long poll) and most end early, so
    without that the heap would hold every wait of the last minutes.
    """

    def __init__(self) -> None:
        self._by_job: dict[str, list[Reply]] = {}
        self._deadlines: list[tuple[float, int, str, Reply]] = []
        self._order = itertools.count()
        self._count = 0  # handles in _by_job

    def __len__(self) -> int:
        """How many handles wait."""
        return self._count

    @property
    def entries(self) -> int:
        """How many deadlines the heap holds, answered ones included."""
        return len(self._deadlines)

    def add(self, job_id: str, handle: Reply, deadline: float) -> None:
        """``handle`` waits for ``job_id`` until ``deadline`` (monotonic seconds).

        A NaN deadline is over at once: NaN compares false with everything, and one at
        the top of the heap would keep every later wait from ever running out.
        """
        if math.isnan(deadline):
            deadline = -math.inf
        self._by_job.setdefault(job_id, []).append(handle)
        self._count += 1
        heapq.heappush(self._deadlines, (deadline, next(self._order), job_id, handle))

    def pop(self, job_id: str) -> list[Reply]:
        """The handles waiting for ``job_id``, which no longer wait."""
        handles = self._by_job.pop(job_id, [])
        self._count -= len(handles)
        return handles

    def expired(self, now: float) -> Iterator[tuple[str, Reply]]:
        """``(job_id, handle)`` of every wait over at ``now``, which no longer waits."""
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, _, job_id, handle = heapq.heappop(deadlines)
            handles = self._by_job.get(job_id)
            if handles is None or handle not in handles:
                continue  # answered when the job finished
            handles.remove(handle)
            self._count -= 1
            if not handles:
                del self._by_job[job_id]
            yield job_id, handle

    def compact(self) -> None:
        """Drop the deadlines of answered waits once they are most of the heap."""
        if len(self._deadlines) <= 2 * self._count + 1024:
            return
        by_job = self._by_job
        self._deadlines = [
            entry for entry in self._deadlines if entry[3] in by_job.get(entry[2], ())
        ]
        heapq.heapify(self._deadlines)

    def clear(self) -> list[Reply]:
        """Every waiting handle, none of which waits any more."""
        handles = [handle for waiting in self._by_job.values() for handle in waiting]
        self._by_job.clear()
        self._deadlines.clear()
        self._count = 0
        return handles


class Gather:
    """The reply to a SubmitJobs, sent once each of its submits has its own reply."""

    __slots__ = ("handle", "left", "replies")

    def __init__(self, handle: Reply, count: int) -> None:
        self.handle = handle
        self.left = count
        self.replies: list[SubmittedReply | SubmitRefusedReply | None] = [None] * count


class Slot:
    """Where the reply to one submit of a SubmitJobs goes (a :class:`Reply`)."""

    __slots__ = ("gather", "index")

    def __init__(self, gather: Gather, index: int) -> None:
        self.gather = gather
        self.index = index

    def resolve(self, result: Any) -> None:
        gather = self.gather
        if gather.left == 0 or gather.replies[self.index] is not None:
            return
        gather.replies[self.index] = result
        gather.left -= 1
        if gather.left == 0:
            gather.handle.resolve(SubmitJobsReply([r for r in gather.replies if r is not None]))

    def fail(self, error: Exception) -> None:
        if self.gather.left > 0:
            self.gather.left = 0
            self.gather.handle.fail(error)
