"""examples/chromium: the development shape (everything inline, only Chromium in its
container) and the production shape (a Scheduler and a docker Pool of rendering workers),
one config file each."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import msgspec
import pypdf
import pytest

from actorwork.chromium import CONTAINER_LABEL
from actorwork.config import load_config
from actorwork.docker.engine import LABEL_PREFIX, Engine
from actorwork.docker.images import CHROMIUM_WORKER_IMAGE, ensure_worker_image
from actorwork.pool.containers import owner_label

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "chromium"


def _containers() -> set[str]:
    listed = subprocess.run(
        ["docker", "ps", "--all", "--quiet", "--filter", f"label={CONTAINER_LABEL}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return set(listed.stdout.split())


def test_the_config_is_inline_with_chromium_in_docker() -> None:
    config = load_config(EXAMPLE / "actorwork.toml", env={})
    assert config.jobs.topology == "inline"
    assert config.chromium.mode == "docker"


def test_the_example_renders_its_report_and_leaves_no_container(
    tmp_path: Path, chromium_image: str
) -> None:
    before = _containers()
    done = subprocess.run(
        [sys.executable, str(EXAMPLE / "render.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "console type='log' text='report filled in 3 rows'" in done.stdout
    data = (tmp_path / "rendered" / "report.pdf").read_bytes()
    [page] = pypdf.PdfReader(io.BytesIO(data)).pages
    assert "Weekly render report" in page.extract_text()
    assert (tmp_path / "rendered" / "report.png").read_bytes().startswith(b"\x89PNG")
    assert _containers() <= before


# --- the production shape: examples/chromium/production.toml ---------------------------


def test_the_production_config_differs_from_the_development_one_only_where_it_must() -> None:
    development = load_config(EXAMPLE / "actorwork.toml", env={})
    production = load_config(EXAMPLE / "production.toml", env={})
    assert production.jobs.topology == "distributed"
    assert production.scheduler.address.startswith("tcp://")
    render = production.pools["render"]
    assert (render.kind, render.image) == ("docker", CHROMIUM_WORKER_IMAGE)
    assert production.chromium == development.chromium
    # Everything else is the same: put the differences back and the two are equal.
    undone = msgspec.structs.replace(
        production,
        jobs=development.jobs,
        scheduler=development.scheduler,
        pools={
            "render": msgspec.structs.replace(
                render,
                kind=development.pools["render"].kind,
                image=development.pools["render"].image,
            )
        },
        source=development.source,
    )
    assert undone == development


@pytest.fixture(scope="session")
def rendering_image(chromium_image: str) -> str:
    """The rendering worker image (``build-worker-image.sh --chromium``), built if missing."""

    async def ensure() -> str:
        async with Engine() as engine:
            return await ensure_worker_image(engine, chromium=True)

    return anyio.run(ensure)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_production_example_renders_its_report_in_the_pools_containers(
    tmp_path: Path, rendering_image: str
) -> None:
    config = str(EXAMPLE / "production.toml")
    port = _free_port()  # the file's 7431 may be taken on a shared machine
    env = {**os.environ, "ACTORWORK_SCHEDULER__ADDRESS": f"tcp://127.0.0.1:{port}"}
    roles = {}
    try:
        for role in ("scheduler", "pool"):
            with (tmp_path / f"{role}.log").open("wb") as log:
                roles[role] = subprocess.Popen(
                    [sys.executable, "-m", "actorwork", "--config", config, role],
                    cwd=tmp_path,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        deadline = time.monotonic() + 60
        while not _listening(port):
            assert time.monotonic() < deadline, (tmp_path / "scheduler.log").read_text()
            time.sleep(0.1)
        owner = owner_label(roles["pool"].pid)
        done = subprocess.run(
            [sys.executable, str(EXAMPLE / "render.py"), "", config],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=400,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr + (tmp_path / "pool.log").read_text()
        assert "console type='log' text='report filled in 3 rows'" in done.stdout
        data = (tmp_path / "rendered" / "report.pdf").read_bytes()
        [page] = pypdf.PdfReader(io.BytesIO(data)).pages
        assert "Weekly render report" in page.extract_text()
        assert "pages" in page.extract_text(), "the rows the page added late are printed"
        assert _owned_containers(owner), "the works ran in the pool's containers"
    finally:
        for proc in roles.values():
            proc.send_signal(signal.SIGTERM)
        for proc in roles.values():
            proc.wait(timeout=120)
    assert _owned_containers(owner) == set()


def _owned_containers(owner: str) -> set[str]:
    listed = subprocess.run(
        ["docker", "ps", "--all", "--quiet", "--filter", f"label={LABEL_PREFIX}.owner={owner}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return set(listed.stdout.split())
