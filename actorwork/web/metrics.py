"""Prometheus metrics, read from the Scheduler's queries at each scrape.

Each app has a :class:`prometheus_client.CollectorRegistry` of its own, so two apps in
one process (or a user's own metrics) never clash. A scrape asks the Scheduler for its
queues, pools and readings (:meth:`Client.queues`, :meth:`Client.pools`,
:meth:`Client.stats`) and renders them; nothing is kept between scrapes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from actorwork.client import Client
from actorwork.messages import PoolView, QueueView, StatsReply

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
    for pool in snapshot.pools:
        pools.add_metric([pool.name], float(pool.connected))
        busy = len(pool.busy)
        workers.add_metric([pool.name, "busy"], busy)
        workers.add_metric([pool.name, "idle"], max(0, pool.capacity - busy))
        heartbeat.add_metric([pool.name], pool.heartbeat_age)
    yield from (pools, workers, heartbeat)


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
