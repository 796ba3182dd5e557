"""The limits of the Scheduler's pure state: concurrency per key and token buckets.

A mixin of :class:`~actorwork.scheduler.state.SchedulerState`, which holds the fields
it works on (declared here, set there).

With a limit (:class:`actorwork.work.Limit`), a job whose limit is full when its turn comes
is held aside, still ``queued``, its view saying why; it goes back to its queue when a
job of that limit stops running (whatever ended it: a result, a lease that ran out,
a cancel) or when the limit's token bucket refills. Invariant: for every limit key,
the running jobs that count against it are at most its ``concurrency``, and the starts
in any ``t`` seconds at most ``tokens + rate * t``.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass

from actorwork.clock import Now
from actorwork.stores.base import Job
from actorwork.work import Limit

__all__ = ["Bucket", "Limits"]


@dataclass
class Bucket:
    """A rate limit's tokens, as of ``stamp`` (monotonic seconds)."""

    tokens: float
    stamp: float

    def refill(self, limit: Limit, mono: float) -> None:
        """Add the tokens ``limit``'s rate gave since ``stamp``, up to its ``tokens``."""
        rate = limit.rate or 0.0
        self.tokens = min(float(limit.tokens), self.tokens + max(0.0, mono - self.stamp) * rate)
        self.stamp = max(self.stamp, mono)


class Limits:
    """Holding jobs by their limits; see the module docstring."""

    # Fields of SchedulerState, where each is described.
    jobs: dict[str, Job]
    _running: dict[str, int]
    _holding: dict[str, str]
    _held: dict[str, list[tuple[int, int, str]]]
    _held_why: dict[str, str]
    _buckets: dict[str, Bucket]
    _refills: list[tuple[float, str]]
    _refill_at: dict[str, float]
    _unheld: bool
    # A method of SchedulerState.
    _enqueue: Callable[[Job], None]

    def _limited(self, job: Job, now: Now) -> str:
        """Why ``job``'s limit lets it not start now; "" when it may (or has no limit)."""
        limit, key = job.limit, job.limit_key
        if limit is None or key is None:
            return ""
        running = self._running.get(key, 0)
        if limit.concurrency is not None and running >= limit.concurrency:
            return f"held by limit {key!r}: {running} of {limit.concurrency} running"
        if limit.rate is not None and self._bucket(key, limit, now).tokens < 1.0:
            return f"held by limit {key!r}: at most {limit.rate:g} starts per second"
        return ""

    def _bucket(self, key: str, limit: Limit, now: Now) -> Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(float(limit.tokens), now.mono)
        else:
            bucket.refill(limit, now.mono)
        return bucket

    def _take(self, job: Job, now: Now, *, tokens: bool = True) -> None:
        """``job`` starts running: it counts against its limit until :meth:`_give`."""
        limit, key = job.limit, job.limit_key
        if limit is None or key is None or job.id in self._holding:
            return
        self._holding[job.id] = key
        self._running[key] = self._running.get(key, 0) + 1
        if tokens and limit.rate is not None:
            self._bucket(key, limit, now).tokens -= 1.0
            self._arm(key, now)

    def _give(self, job: Job) -> None:
        """``job`` stopped running: its limit has room for one held job again."""
        key = self._holding.pop(job.id, None)
        if key is None:
            return
        left = self._running[key] - 1
        if left:
            self._running[key] = left
        else:
            del self._running[key]
        self._unheld |= self._unhold(key, 1)

    def _hold(self, job: Job, entry: tuple[int, int, str], why: str, now: Now) -> None:
        """Set a queued job aside until its limit has room; a rate wakes it by the clock."""
        key = job.limit_key
        assert key is not None
        heapq.heappush(self._held.setdefault(key, []), entry)
        self._held_why[job.id] = why
        self._arm(key, now)

    def _arm(self, key: str, now: Now) -> None:
        """Wake the jobs held under a rate-limited ``key`` when its next token is in."""
        limit = self._held_limit(key)
        if limit is None or limit.rate is None or key in self._refill_at:
            return
        bucket = self._bucket(key, limit, now)
        if bucket.tokens >= 1.0:
            return  # held for its concurrency: a job that stops running wakes it
        at = now.mono + (1.0 - bucket.tokens) / limit.rate
        self._refill_at[key] = at
        heapq.heappush(self._refills, (at, key))

    def _held_limit(self, key: str) -> Limit | None:
        """The limit of the jobs held under ``key``, if any job is held there."""
        for _, _, job_id in self._held.get(key, ()):
            job = self.jobs.get(job_id)
            if job is not None and job.limit is not None:
                return job.limit
        return None

    def _unhold(self, key: str, count: int) -> bool:
        """Put back up to ``count`` of the best jobs held under ``key``; whether any went."""
        heap = self._held.get(key)
        moved = 0
        while heap and moved < count:
            _, seq, job_id = heapq.heappop(heap)
            job = self.jobs.get(job_id)
            if self._held_why.pop(job_id, None) is None or job is None or job.seq != seq:
                continue
            if job.status == "queued":
                self._enqueue(job)
                moved += 1
        if heap is not None and not heap:
            del self._held[key]
        return moved > 0
