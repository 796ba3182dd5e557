"""The Prometheus page's timings and backlogs, after real jobs ran on a real clock:
queue wait and run time per work, store commit durations, loop lag, busy and idle
workers, and each Pool's outbox backlog, all read through the ordinary client."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from actorwork import JobSystem
from actorwork.client import Client
from actorwork.config import Config, load_config
from actorwork.messages import TIMING_BUCKETS, PoolView, StatsReply, Timings
from actorwork.web import create_app
from actorwork.web.metrics import Snapshot, families
from tests.jobs import works

BASE = "http://127.0.0.1:7480"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _samples(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _config(tmp_path: Path) -> Config:
    data: dict[str, Any] = {
        "jobs": {"modules": ["tests.jobs.works"]},
        "scheduler": {"address": f"inproc://metrics-{tmp_path.name}", "store": f"{tmp_path}/j.db"},
        "pools": {"main": {"size": 2, "outbox": f"{tmp_path}/outbox", "heartbeat": 0.2}},
    }
    return load_config(data=data, env={})


async def test_timings_per_work_commits_and_backlog_after_jobs_ran(tmp_path: Path) -> None:
    async with JobSystem(_config(tmp_path)) as jobs:
        assert jobs.client is not None
        samples, held = await _ran_and_scraped(jobs, jobs.client)
    add, block = (("work", "add"),), (("work", "block"),)
    assert samples["actorwork_job_queue_wait_seconds_count", add] == 3
    assert samples["actorwork_job_queue_wait_seconds_sum", add] >= held > 0
    assert samples["actorwork_job_queue_wait_seconds_bucket", (("le", "+Inf"), *add)] == 3
    assert samples["actorwork_job_run_seconds_count", block] == 1
    assert samples["actorwork_job_run_seconds_sum", block] >= 0.05
    assert samples["actorwork_job_run_seconds_bucket", (("le", "0.025"), *block)] == 0
    assert samples["actorwork_job_run_seconds_count", add] == 3
    commits = samples["actorwork_store_commit_duration_seconds_count", ()]
    assert commits >= 2
    assert samples["actorwork_store_commit_duration_seconds_sum", ()] > 0
    assert commits == samples["actorwork_store_commits_total", ()]
    assert samples["actorwork_scheduler_loop_lag_seconds", ()] >= 0
    main = (("pool", "main"),)
    assert samples["actorwork_pool_outbox_backlog", main] >= 0
    assert samples["actorwork_pool_workers", (*main, ("state", "busy"))] == 0
    assert samples["actorwork_pool_workers", (*main, ("state", "idle"))] == 2


async def _ran_and_scraped(jobs: JobSystem, client: Client) -> tuple[Samples, float]:
    """Jobs held queued a while, then run; the metrics page read after, and how long
    the held jobs waited queued in all, at least."""
    await client.pause_queue("default")
    waiting, stored = [], []
    for i in range(3):
        waiting.append(await jobs.submit(works.add, works.Pair(i, i)))
        stored.append(time.time())  # it was queued by then
    resumed = time.time()  # and still queued then: dispatched after the resume arrives
    await client.pause_queue("default", paused=False)
    held = sum(resumed - at for at in stored)
    blocked = await jobs.submit(works.block, 0.05)
    for handle in [*waiting, blocked]:
        await handle.wait(timeout=60)
    app = create_app(client)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url=BASE) as http:
        return _samples((await http.get("/metrics")).text), held


def test_a_pools_backlog_and_the_buckets_render_as_the_scheduler_said() -> None:
    counts = [0] * (len(TIMING_BUCKETS) + 1)
    counts[0], counts[-1] = 2, 1  # two within a millisecond, one over an hour
    stats = StatsReply(
        live=[], finished=[], run_times=[Timings("w", counts, 7200.002)], commit_times=None
    )
    pool = PoolView(
        name="p",
        queues=["default"],
        works=None,
        connected=True,
        capacity=4,
        free=4,
        busy=[],
        heartbeat_age=0.1,
        backlog=3,
    )
    text = "".join(
        f"{s.name} {s.labels} {s.value}\n"
        for family in families(Snapshot(pools=[pool], stats=stats))
        for s in family.samples
    )
    assert "actorwork_pool_outbox_backlog {'pool': 'p'} 3" in text
    assert "actorwork_job_run_seconds_bucket {'work': 'w', 'le': '0.001'} 2" in text
    assert "actorwork_job_run_seconds_bucket {'work': 'w', 'le': '3600.0'} 2" in text
    assert "actorwork_job_run_seconds_bucket {'work': 'w', 'le': '+Inf'} 3" in text
