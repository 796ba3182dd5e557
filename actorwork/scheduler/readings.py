"""The Scheduler's readings for metrics: histograms of durations it sees go by.

Kept in memory since the Scheduler started (a restart begins again at zero, as
Prometheus expects of counters), and handed out as :class:`~actorwork.messages.Timings`
in a :class:`~actorwork.messages.StatsReply`. Durations are put in buckets as they
come: a reading is a fixed number of counts whatever the number of jobs.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from actorwork.messages import TIMING_BUCKETS, Timings

__all__ = ["Histogram", "Readings"]


@dataclass(slots=True)
class Histogram:
    """Counts of durations by bucket of :data:`TIMING_BUCKETS` (one more for longer)."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(TIMING_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        """Count one duration; a negative or non-finite one (a clock that jumped) is
        passed over."""
        if not (math.isfinite(seconds) and seconds >= 0.0):
            return
        self.counts[bisect.bisect_left(TIMING_BUCKETS, seconds)] += 1
        self.total += seconds

    def timings(self, name: str = "") -> Timings:
        return Timings(name, list(self.counts), self.total)


@dataclass(slots=True)
class Readings:
    """Per work, how long jobs waited queued and how long their attempts ran; how long
    store commits took."""

    queue_waits: dict[str, Histogram] = field(default_factory=dict)
    run_times: dict[str, Histogram] = field(default_factory=dict)
    commits: Histogram = field(default_factory=Histogram)

    def waited(self, work: str, seconds: float) -> None:
        """A job of ``work`` was dispatched after ``seconds`` queued."""
        _of(self.queue_waits, work).observe(seconds)

    def ran(self, work: str, seconds: float) -> None:
        """An attempt of ``work`` ran ``seconds``."""
        _of(self.run_times, work).observe(seconds)

    @staticmethod
    def listed(histograms: dict[str, Histogram]) -> list[Timings]:
        """``histograms`` as Timings, by name."""
        return [histograms[name].timings(name) for name in sorted(histograms)]


def _of(histograms: dict[str, Histogram], work: str) -> Histogram:
    found = histograms.get(work)
    if found is None:
        found = histograms[work] = Histogram()
    return found
