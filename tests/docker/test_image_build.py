"""``actorwork image build`` on the real engine: an image with the user's work package,
installed offline, that a docker pool runs with nothing mounted."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from actorwork import JobSystem
from actorwork.config import load_config
from actorwork.docker.engine import Engine
from tests.docker.conftest import POOL_PREFIX, REPO, pool_containers

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SAMPLE = Path(__file__).parent / "sample_app"


@pytest.fixture
async def sample_image(engine: Engine) -> AsyncIterator[str]:
    tag = f"actorwork-test/sample:{uuid.uuid4().hex[:6]}"
    command = [sys.executable, "-m", "actorwork", "image", "build", "--tag", tag]
    done = await anyio.run_process([*command, "--package", str(SAMPLE)], cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr.decode()
    assert f"built {tag}" in done.stdout.decode()
    yield tag
    await engine.client.images.delete(tag, force=True)


async def test_built_image_runs_the_users_work_with_nothing_mounted(
    sample_image: str, engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(SAMPLE))  # the Scheduler here validates the payload
    pool = f"{POOL_PREFIX}{uuid.uuid4().hex[:6]}"
    path = tmp_path / "aw.toml"
    path.write_text(
        f"""
[jobs]
topology = "local"
modules = ["sample_app"]

[scheduler]
address = "inproc://image-{pool}"
store = "{tmp_path}/jobs.db"

[pools.{pool}]
kind = "docker"
size = 1
outbox = "{tmp_path}/outbox"
image = "{sample_image}"
network = "none"
"""
    )
    async with JobSystem(load_config(path)) as jobs:
        handle = await jobs.submit("shout", "built offline")
        assert await handle.result(timeout=60) == "BUILT OFFLINE"
        (container,) = await pool_containers(engine, pool)
        shown = await engine.inspect(str(container["Id"]))
        assert all("actorwork-bridge" in bind for bind in shown["HostConfig"]["Binds"])


def test_bad_tag_is_refused_naming_it() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "actorwork", "image", "build", "--tag", "Bad Tag!"],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "--tag = 'Bad Tag!' is not an image reference" in done.stderr
