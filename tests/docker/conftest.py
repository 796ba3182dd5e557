"""Fixtures of the Docker tests: the real engine, and the worker image they run.

Containers run the worker image (``actorwork/worker:0.1.0``, or
``$ACTORWORK_TEST_IMAGE``), built with ``scripts/build-worker-image.sh`` when missing
(which builds the Debian base with debootstrap first). That image brings Python and
actorwork's dependencies; the code under test comes from this checkout: its
``actorwork`` and ``tests`` directories are bind-mounted read-only at
``/opt/actorwork-src`` and put first on ``PYTHONPATH``, so the containers run the work
tree as it is (the works of ``tests.jobs.works`` included) without a rebuild per edit.
Every test skips, saying why, only when no Docker Engine answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from actorwork.docker.engine import LABEL_PREFIX, Engine
from actorwork.docker.images import SOURCE_DIR, ensure_worker_image
from actorwork.errors import EngineUnavailable

REPO = Path(__file__).resolve().parents[2]
#: Every pool a Docker test runs has a name with this prefix, so leftovers can be found.
POOL_PREFIX = "awtest"


def source_mounts() -> list[str]:
    """The checkout's code, read-only, where the containers' PYTHONPATH looks first."""
    return [
        f"{REPO / 'actorwork'}:{SOURCE_DIR}/actorwork:ro",
        f"{REPO / 'tests'}:{SOURCE_DIR}/tests:ro",
    ]


async def _prepare() -> str:
    try:
        async with Engine() as engine:
            return await ensure_worker_image(engine)
    except EngineUnavailable as exc:
        return f"skip: {exc}"


@pytest.fixture(scope="session")
def worker_image() -> Iterator[str]:
    """The image the test containers run (built once if missing); skips without an engine."""
    image = anyio.run(_prepare)
    if image.startswith("skip: "):
        pytest.skip(image.removeprefix("skip: "))
    yield image
    anyio.run(_remove_leftovers)


async def _remove_leftovers() -> None:
    async with Engine() as engine:
        for item in await engine.containers({f"{LABEL_PREFIX}.pool": ""}):
            if (item.get("Labels") or {}).get(f"{LABEL_PREFIX}.pool", "").startswith(POOL_PREFIX):
                await engine.remove(item["Id"])


@pytest.fixture
async def engine(worker_image: str) -> AsyncIterator[Engine]:
    async with Engine() as opened:
        yield opened


async def pool_containers(engine: Engine, pool: str) -> list[dict[str, object]]:
    """The containers labelled as ``pool``'s, running or not."""
    return await engine.containers({f"{LABEL_PREFIX}.pool": pool})


def shared_dir(path: Path) -> Path:
    """``path``, writable by the containers' user (the history file goes there)."""
    path.chmod(0o777)
    return path
