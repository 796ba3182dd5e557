"""Prometheus metrics, read from the Scheduler's queries at each scrape.

Each app has a :class:`prometheus_client.CollectorRegistry` of its own, so two apps in
one process (or a user's own metrics) never clash. A scrape asks the Scheduler for its
queues, pools and readings (:meth:`Client.queues`, :meth:`Client.pools`,
:meth:`Client.stats`) and renders them; nothing is kept between scrapes.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from actorwork.client import Client
from actorwork.messages import TIMING_BUCKETS, PoolView, QueueView, StatsReply, Timings

__all__ = ["Metrics", "Snapshot"]


@dataclass
class Snapshot:
    """What one scrape read from the Scheduler."""

    queues: list[QueueView] = field(default_factory=list)
    pools: list[PoolView] = field(default_factory=list)
    stats: StatsReply | None = None


def families(snapshot: Snapshot) -> Iterator[Metric]:
    """The metric families of ``snapshot``. Pure."""
    stats = snapshot.stats
    if stats is not None:
        finished = CounterMetricFamily(
            "actorwork_jobs_finished",
            "Jobs that ended since the Scheduler started, by work, queue and outcome.",
            labels=["work", "queue", "outcome"],
        )
        for count in stats.finished:
            finished.add_metric([count.work, count.queue, count.status], count.count)
        yield finished
        live = GaugeMetricFamily(
            "actorwork_jobs_live",
            "Jobs not finished, by work, queue and status.",
            labels=["work", "queue", "status"],
        )
        for count in stats.live:
            live.add_metric([count.work, count.queue, count.status], count.count)
        yield live
        commits = CounterMetricFamily(
            "actorwork_store_commit_seconds", "Time the Scheduler's store commits took."
        )
        commits.add_metric([], stats.commit_seconds)
        yield commits
        total = CounterMetricFamily("actorwork_store_commits", "Store commits of the Scheduler.")
        total.add_metric([], stats.commits)
        yield total
        yield GaugeMetricFamily(
            "actorwork_store_commit_last_seconds",
            "How long the latest store commit took.",
            value=stats.commit_last,
        )
        yield GaugeMetricFamily(
            "actorwork_scheduler_loop_lag_seconds",
            "How late the Scheduler's latest tick woke.",
            value=stats.loop_lag,
        )
        yield from _timings(stats)
    depth = GaugeMetricFamily(
        "actorwork_queue_depth", "Jobs by queue and status.", labels=["queue", "status"]
    )
    age = GaugeMetricFamily(
        "actorwork_queue_oldest_age_seconds",
        "Seconds the oldest ready job of a queue has waited.",
        labels=["queue"],
    )
    paused = GaugeMetricFamily(
        "actorwork_queue_paused", "1 if a queue is paused.", labels=["queue"]
    )
    for queue in snapshot.queues:
        for status in ("queued", "running", "scheduled", "retrying"):
            depth.add_metric([queue.name, status], getattr(queue, status))
        age.add_metric([queue.name], queue.oldest_age)
        paused.add_metric([queue.name], float(queue.paused))
    yield from (depth, age, paused)
    pools = GaugeMetricFamily(
        "actorwork_pool_connected", "1 if a pool is connected.", labels=["pool"]
    )
    workers = GaugeMetricFamily(
        "actorwork_pool_workers", "Workers of a pool by state.", labels=["pool", "state"]
    )
    heartbeat = GaugeMetricFamily(
        "actorwork_pool_heartbeat_age_seconds",
        "Seconds since the Scheduler last heard from a pool.",
        labels=["pool"],
    )
    backlog = GaugeMetricFamily(
        "actorwork_pool_outbox_backlog",
        "Results a pool holds in its outbox that the Scheduler has not acknowledged.",
        labels=["pool"],
    )
    for pool in snapshot.pools:
        pools.add_metric([pool.name], float(pool.connected))
        busy = len(pool.busy)
        workers.add_metric([pool.name, "busy"], busy)
        workers.add_metric([pool.name, "idle"], max(0, pool.capacity - busy))
        heartbeat.add_metric([pool.name], pool.heartbeat_age)
        backlog.add_metric([pool.name], pool.backlog)
    yield from (pools, workers, heartbeat, backlog)


def _timings(stats: StatsReply) -> Iterator[Metric]:
    """The Scheduler's histograms: queue wait and run time per work, store commits."""
    for name, text, per_work in (
        (
            "actorwork_job_queue_wait_seconds",
            "Seconds jobs waited queued before their dispatch, by work.",
            stats.queue_waits,
        ),
        (
            "actorwork_job_run_seconds",
            "Seconds attempts ran, as their workers timed them, by work.",
            stats.run_times,
        ),
    ):
        family = HistogramMetricFamily(name, text, labels=["work"])
        for timings in per_work:
            family.add_metric([timings.name], _buckets(timings), timings.total)
        yield family
    if stats.commit_times is not None:
        commits = HistogramMetricFamily(
            "actorwork_store_commit_duration_seconds", "Seconds the Scheduler's store commits took."
        )
        commits.add_metric([], _buckets(stats.commit_times), stats.commit_times.total)
        yield commits


def _buckets(timings: Timings) -> list[tuple[str, float]]:
    """Prometheus's cumulative buckets of ``timings``, ending with ``+Inf``."""
    bounds = [*(str(bound) for bound in TIMING_BUCKETS), "+Inf"]
    return list(zip(bounds, itertools.accumulate(timings.counts), strict=True))


class _SnapshotCollector(Collector):
    def __init__(self) -> None:
        self.snapshot = Snapshot()

    def collect(self) -> Iterator[Metric]:
        return families(self.snapshot)


class Metrics:
    """The ``/metrics`` page of one app, with its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self._collector = _SnapshotCollector()
        self.registry.register(self._collector)

    async def render(self, client: Client) -> tuple[bytes, str]:
        """Read the Scheduler now; the page's body and its media type."""
        self._collector.snapshot = Snapshot(
            await client.queues(), await client.pools(), await client.stats()
        )
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
