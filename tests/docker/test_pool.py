"""A ``docker`` pool on the real engine: real jobs end to end, limits, labels, clean-up.

The Scheduler and the Pool run in this process (topology ``local``); each worker runs
in a container of the worker image and reaches the Pool over ``docker://`` (a Unix
socket in a bind-mounted directory; the containers have no network at all).
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

import msgspec
import pytest

from actorwork import JobFailed, JobSystem
from actorwork.config import Config, load_config
from actorwork.docker.engine import LABEL_PREFIX, Engine
from actorwork.docker.images import SOURCE_DIR
from actorwork.errors import ImageNotFound
from tests.docker.conftest import POOL_PREFIX, pool_containers, source_mounts
from tests.jobs import event_works, works

# The first test to run may wait for the session fixture to build the images (minutes).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600), pytest.mark.usefixtures("no_leaks")]


def _config(tmp_path: Path, image: str, pool: str, *, size: int = 2, extra: str = "") -> Config:
    mounts = ", ".join(f'"{mount}"' for mount in source_mounts())
    path = tmp_path / "aw.toml"
    path.write_text(
        f"""
[jobs]
topology = "local"
modules = ["tests.jobs.works"]

[scheduler]
address = "inproc://docker-{pool}"
store = "{tmp_path}/jobs.db"
lease = 10.0
retry_base = 0.01
retry_cap = 0.05

[pools.{pool}]
kind = "docker"
size = {size}
outbox = "{tmp_path}/outbox"
heartbeat = 1.0
image = "{image}"
memory = "256m"
cpus = 1.0
network = "none"
mounts = [{mounts}]
environment = {{ PYTHONPATH = "{SOURCE_DIR}" }}
{extra}
"""
    )
    return load_config(path)


def _pool() -> str:
    return f"{POOL_PREFIX}{uuid.uuid4().hex[:6]}"


async def test_docker_pool_runs_real_jobs(
    worker_image: str, engine: Engine, tmp_path: Path
) -> None:
    pool = _pool()
    async with JobSystem(_config(tmp_path, worker_image, pool)) as jobs:
        running = await pool_containers(engine, pool)
        assert len(running) == 2
        for item in running:
            shown = await engine.inspect(str(item["Id"]))
            assert shown["HostConfig"]["Memory"] == 256 * 1024 * 1024
            assert shown["HostConfig"]["NanoCpus"] == 1_000_000_000
            assert shown["HostConfig"]["NetworkMode"] == "none"
            assert shown["Config"]["Labels"][f"{LABEL_PREFIX}.pool"] == pool
        added = [await jobs.submit(works.add, {"x": n, "y": 1}) for n in range(20)]
        assert [await handle.result(timeout=60) for handle in added] == [n + 1 for n in range(20)]
        echoed = await jobs.submit(works.echo, "from a container")
        assert await echoed.result(timeout=60) == "from a container"
        view = await jobs.client.get(echoed.id)  # type: ignore[union-attr]
        assert view.result is not None
        assert view.result.worker.startswith(f"{pool}.worker-")
        assert any("from a container" in line.text for line in view.result.logs)
        failing = await jobs.submit(works.boom, "inside")
        with pytest.raises(JobFailed, match="inside"):
            await failing.result(timeout=60)
        assert (await jobs.client.get(failing.id)).attempt == 3  # type: ignore[union-attr]
    assert await pool_containers(engine, pool) == []


async def test_config_middleware_runs_in_the_container_worker(
    worker_image: str, engine: Engine, tmp_path: Path
) -> None:
    config = _config(tmp_path, worker_image, _pool(), size=1)
    settings = msgspec.structs.replace(
        config.jobs,
        modules=[*config.jobs.modules, "tests.jobs.event_works"],
        middleware=["tests.jobs.hooks:Tenant"],
    )
    async with JobSystem(msgspec.structs.replace(config, jobs=settings)) as jobs:
        seen = await (await jobs.submit(event_works.context)).result(timeout=60)
    assert seen["tenant"] == "acme"  # the client's submit hook
    assert seen["run_hook_host"] != socket.gethostname()  # the run hook, in the container


async def test_missing_image_names_how_to_build_it(
    worker_image: str, engine: Engine, tmp_path: Path
) -> None:
    pool = _pool()
    config = _config(tmp_path, "actorwork-test/no-such-image:1", pool)
    with pytest.raises(ImageNotFound) as caught:
        async with JobSystem(config):
            pass
    message = str(caught.value)
    assert "'actorwork-test/no-such-image:1'" in message
    assert "actorwork image build --tag actorwork-test/no-such-image:1" in message
    assert await pool_containers(engine, pool) == []


async def test_out_of_memory_is_a_lost_worker_and_the_container_is_replaced(
    worker_image: str, engine: Engine, tmp_path: Path
) -> None:
    pool = _pool()
    config = _config(tmp_path, worker_image, pool, size=1)
    config = msgspec.structs.replace(
        config, jobs=msgspec.structs.replace(config.jobs, modules=["tests.docker.works"])
    )
    async with JobSystem(config) as jobs:
        (first,) = await pool_containers(engine, pool)
        hog = await jobs.submit("hog", 1024)  # 1 GiB in a 256 MiB container
        with pytest.raises(JobFailed):
            await hog.result(timeout=120)
        attempts = await jobs.client.attempts(hog.id)  # type: ignore[union-attr]
        assert [a.result.outcome for a in attempts] == ["lost", "lost"]
        assert all("out of memory" in a.result.error for a in attempts)
        # The Pool replaces the container in the background: a job that runs proves a
        # replacement is up, and only then is the list of containers settled.
        small = await jobs.submit("hog", 8)
        assert await small.result(timeout=60) == 8
        (replacement,) = await pool_containers(engine, pool)
        assert replacement["Id"] != first["Id"]


async def test_tcp_bridge_with_the_shared_secret(
    worker_image: str, engine: Engine, tmp_path: Path
) -> None:
    pool = _pool()
    extra = 'bridge = "tcp"\nadvertise = "127.0.0.1"\n'
    config = _config(tmp_path, worker_image, pool, size=1, extra=extra)
    settings = msgspec.structs.replace(config.pools[pool], network="host")
    config = msgspec.structs.replace(config, pools={pool: settings})
    async with JobSystem(config) as jobs:
        (container,) = await pool_containers(engine, pool)
        shown = await engine.inspect(str(container["Id"]))
        assert shown["Config"]["Cmd"][3].startswith("docker://127.0.0.1:")
        assert not shown["HostConfig"]["Binds"] or all(
            "actorwork-bridge" not in bind for bind in shown["HostConfig"]["Binds"]
        )
        handle = await jobs.submit(works.add, {"x": 2, "y": 3})
        assert await handle.result(timeout=60) == 5
