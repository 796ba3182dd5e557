"""Tracing across a container worker: the submit and dispatch spans made in this
process and the run span made inside the container share one trace.

The worker image has actorwork's dependencies but not the ``otel`` extra: the test
copies the OpenTelemetry packages installed here (pure Python) into a directory it
mounts read-only in the containers, first on their ``PYTHONPATH``. The container's
spans go to a JSON-lines file in a second mounted directory
(``tests/jobs/tracing_setup.py``), which the test reads back.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import opentelemetry
import pytest

from actorwork import JobSystem
from actorwork.config import Config, load_config
from actorwork.docker.images import SOURCE_DIR
from tests.docker.conftest import POOL_PREFIX, shared_dir, source_mounts
from tests.jobs import traced_works
from tests.jobs.tracing_setup import (
    EXPORTER,
    SPANS_VARIABLE,
    describe,
    provider,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600), pytest.mark.usefixtures("no_leaks")]

#: What ``opentelemetry-sdk`` needs beside itself, by top-level name in site-packages.
_PACKAGES = ("opentelemetry", "importlib_metadata", "zipp", "typing_extensions.py")
_DISTRIBUTIONS = (
    "opentelemetry_api",
    "opentelemetry_sdk",
    "opentelemetry_semantic_conventions",
    "importlib_metadata",
    "zipp",
)


def _otel_packages(into: Path) -> Path:
    """A copy of the installed OpenTelemetry packages (and their entry points)."""
    (site,) = {Path(path).parent for path in opentelemetry.__path__}
    for name in _PACKAGES:
        source = site / name
        if source.is_dir():
            shutil.copytree(source, into / name)
        else:
            shutil.copy2(source, into / name)
    for distribution in _DISTRIBUTIONS:
        for info in site.glob(f"{distribution}-*.dist-info"):
            shutil.copytree(info, into / info.name)
    into.chmod(0o755)
    return into


def _config(tmp_path: Path, image: str, spans: Path) -> Config:
    packages = _otel_packages(tmp_path / "otel")
    mounts = [*source_mounts(), f"{packages}:/opt/otel:ro", f"{spans}:/spans"]
    data = {
        "jobs": {
            "topology": "local",
            "modules": ["tests.jobs.traced_works"],
            "middleware": ["tests.jobs.tracing_setup:tracing"],
        },
        "scheduler": {
            "address": f"inproc://docker-tracing-{tmp_path.name}",
            "store": f"{tmp_path}/jobs.db",
        },
        "pools": {
            f"{POOL_PREFIX}{uuid.uuid4().hex[:6]}": {
                "kind": "docker",
                "size": 1,
                "outbox": f"{tmp_path}/outbox",
                "image": image,
                "network": "none",
                "mounts": mounts,
                "environment": {
                    "PYTHONPATH": f"/opt/otel:{SOURCE_DIR}",
                    SPANS_VARIABLE: "/spans",
                },
            }
        },
    }
    return load_config(data=data, env={})


async def test_one_trace_crosses_into_a_container_worker(
    worker_image: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "spans").mkdir()
    spans = shared_dir(tmp_path / "spans")  # the containers' user writes there
    monkeypatch.delenv(SPANS_VARIABLE, raising=False)  # this process keeps its in memory
    provider()
    EXPORTER.clear()
    config = _config(tmp_path, worker_image, spans)
    async with JobSystem(config) as jobs:
        handle = await jobs.submit(traced_works.step)
        seen = await handle.result(timeout=120)
    here = {s["name"]: s for s in map(describe, EXPORTER.get_finished_spans())}
    there = {
        s["name"]: s
        for file in spans.glob("*.jsonl")
        for s in map(json.loads, file.read_text().splitlines())
    }
    submit = here[f"actorwork.submit {traced_works.step.name}"]
    dispatch = here[f"actorwork.dispatch {traced_works.step.name}"]
    run = there[f"actorwork.run {traced_works.step.name}"]
    assert f"actorwork.run {traced_works.step.name}" not in here  # made in the container
    assert {dispatch["trace_id"], run["trace_id"], there["work step"]["trace_id"]} == {
        submit["trace_id"]
    }
    assert dispatch["parent_id"] == run["parent_id"] == submit["span_id"]
    assert there["work step"]["parent_id"] == run["span_id"]
    assert seen["traceparent"].startswith(f"00-{submit['trace_id']}-{submit['span_id']}-")
