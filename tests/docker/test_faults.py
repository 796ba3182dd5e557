"""Faults of a ``docker`` pool on the real engine: F2 (``docker kill`` mid-job) and the
orphans of a Pool killed with SIGKILL.

As in ``tests/jobs/test_faults.py``, the Scheduler and the Pool run as
``python -m actorwork ... scheduler|pool`` in process groups of their own and the test
is a client; here the Pool's workers are containers. The history file is in the
test's directory, which is bind-mounted into the containers at the same path.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from actorwork.docker.engine import Engine
from actorwork.docker.images import SOURCE_DIR
from tests.docker.conftest import POOL_PREFIX, pool_containers, shared_dir, source_mounts
from tests.jobs.harness import eventually
from tests.jobs.test_faults import Cluster

# The first test to run may wait for the session fixture to build the images (minutes).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@dataclass
class DockerCluster(Cluster):
    """A Scheduler and a ``docker`` Pool process; the pool's name is unique per test."""

    image: str = ""
    pool: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.pool = f"{POOL_PREFIX}{uuid.uuid4().hex[:6]}"
        shared_dir(self.tmp)
        mounts = [*source_mounts(), f"{self.tmp}:{self.tmp}"]
        text = self.config.read_text().replace("[pools.p]", f"[pools.{self.pool}]")
        text = text.replace('kind = "process"', 'kind = "docker"')
        self.config.write_text(
            text
            + f"""image = "{self.image}"
network = "none"
mounts = [{", ".join(f'"{mount}"' for mount in mounts)}]
environment = {{ PYTHONPATH = "{SOURCE_DIR}" }}
"""
        )

    async def containers(self, engine: Engine, *, running: bool | None = None) -> list[str]:
        found = await pool_containers(engine, self.pool)
        return [
            str(item["Id"])
            for item in found
            if running is None or (item.get("State") == "running") == running
        ]


@pytest.fixture
def docker_cluster(tmp_path: Path, worker_image: str) -> Iterator[Callable[..., DockerCluster]]:
    made: list[DockerCluster] = []

    def make(**options: Any) -> DockerCluster:
        cluster = DockerCluster(tmp_path, image=worker_image, **options)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        cluster.cleanup()


async def test_f2_container_killed_mid_job(
    docker_cluster: Callable[..., DockerCluster], engine: Engine
) -> None:
    cluster = docker_cluster(size=1)
    cluster.start("scheduler")
    cluster.start("pool")
    async with cluster.connected():
        (first_container,) = await eventually(
            lambda: cluster.containers(engine, running=True), "the pool's container"
        )
        job = await cluster.submit("f2", cluster.step(seconds=30.0, attempts=[1]), retries=2)
        await eventually(lambda: cluster.history.started(job, 1), "attempt 1 to start")
        await engine.kill(first_container)  # what `docker kill` does
        final = await cluster.drained()
        replaced = await cluster.containers(engine, running=True)
        assert first_container not in replaced
        assert len(replaced) == 1, "the pool replaced its container"
        history = await cluster.finish()
    assert final[job].status == "succeeded"
    assert final[job].attempt == 2
    lost = history.committed(job)[0]
    assert (lost.attempt, lost.outcome) == (1, "lost")
    assert "container" in lost.error
    assert "exited (code 137" in lost.error
    assert not history.started(job, 3)
    # The pool stopped (SIGTERM): no container of it is left, not even the killed one.
    assert await cluster.containers(engine) == []


async def test_orphans_of_a_sigkilled_pool_are_removed_at_its_next_start(
    docker_cluster: Callable[..., DockerCluster], engine: Engine
) -> None:
    cluster = docker_cluster(size=2)
    cluster.start("scheduler")
    cluster.start("pool")
    orphans = await eventually(
        lambda: _two(cluster.containers(engine, running=True)), "two containers"
    )
    cluster.kill("pool")  # SIGKILL: no chance to remove its containers
    assert set(await cluster.containers(engine)) == set(orphans)
    cluster.start("pool")
    async with cluster.connected():
        fresh = await eventually(
            lambda: _two(cluster.containers(engine, running=True), without=orphans),
            "two new containers",
        )
        remaining = set(await cluster.containers(engine))
        assert remaining == set(fresh), "the orphans were removed"
        job = await cluster.submit("after", cluster.step())
        await cluster.drained()
        assert cluster.history.started(job)
    cluster.signal("pool", signal.SIGTERM)
    await cluster.exited("pool")
    assert await cluster.containers(engine) == []
    assert "orphan_container_removed" in cluster.log("pool")


async def _two(found: Awaitable[list[str]], *, without: Sequence[str] = ()) -> list[str] | None:
    ids = [item for item in await found if item not in without]
    return ids if len(ids) == 2 else None
