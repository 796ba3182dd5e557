"""OpenTelemetry tracing as middleware (:mod:`actorwork.tracing`): one trace from the
caller's span through submit (client), dispatch (Scheduler) and run (worker), inline
and with the worker in a child process.

Spans are read with the SDK's in-memory exporter in this process; a process worker's
spans, made in the child, are written by the child to a JSON-lines file of its own
(``tests/jobs/tracing_setup.py``, which the config names as the middleware factory),
and read back from there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from actorwork import JobSystem
from actorwork.config import Config, load_config
from tests.jobs import event_works, traced_works
from tests.jobs.tracing_setup import (
    EXPORTER,
    SPANS_VARIABLE,
    TEST_PID_VARIABLE,
    describe,
    provider,
)

WORK = traced_works.step.name


def _config(tmp_path: Path, kind: str) -> Config:
    data: dict[str, Any] = {
        "jobs": {
            "topology": "local" if kind == "process" else "inline",
            "modules": ["tests.jobs.event_works", "tests.jobs.traced_works"],
            "middleware": ["tests.jobs.tracing_setup:tracing"],
        },
        "scheduler": {
            "address": f"inproc://tracing-{tmp_path.name}",
            "store": f"{tmp_path}/jobs.db",
            "retry_base": 0.01,
            "retry_cap": 0.05,
        },
        "pools": {"main": {"kind": kind, "size": 1, "outbox": f"{tmp_path}/outbox"}},
    }
    return load_config(data=data, env={})


def _spans(directory: Path) -> list[dict[str, Any]]:
    """Every span: this process's from memory, the others' from their files."""
    spans = [describe(span) for span in EXPORTER.get_finished_spans()]
    for file in sorted(directory.glob("*.jsonl")):
        spans += [json.loads(line) for line in file.read_text().splitlines()]
    return spans


@pytest.fixture
def spans_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "spans"
    directory.mkdir()
    monkeypatch.setenv(SPANS_VARIABLE, str(directory))  # inherited by process workers
    monkeypatch.setenv(TEST_PID_VARIABLE, str(os.getpid()))
    EXPORTER.clear()
    return directory


@pytest.mark.parametrize("kind", ["local", "process"])
async def test_one_trace_crosses_client_scheduler_and_worker(
    tmp_path: Path, spans_directory: Path, kind: str
) -> None:
    config = _config(tmp_path, kind)
    async with JobSystem(config) as jobs:
        with provider().get_tracer("test").start_as_current_span("request") as request:
            handle = await jobs.submit(traced_works.step)
        seen = await handle.result(timeout=60)
    by_name = {span["name"]: span for span in _spans(spans_directory)}
    submit = by_name[f"actorwork.submit {WORK}"]
    dispatch = by_name[f"actorwork.dispatch {WORK}"]
    run = by_name[f"actorwork.run {WORK}"]
    step = by_name["work step"]
    trace_id = f"{request.get_span_context().trace_id:032x}"
    assert {submit["trace_id"], dispatch["trace_id"], run["trace_id"], step["trace_id"]} == {
        trace_id
    }
    assert submit["parent_id"] == f"{request.get_span_context().span_id:016x}"
    assert dispatch["parent_id"] == run["parent_id"] == submit["span_id"]
    assert step["parent_id"] == run["span_id"]  # the work's own span, in its thread
    assert (submit["kind"], dispatch["kind"], run["kind"]) == ("PRODUCER", "INTERNAL", "CONSUMER")
    assert run["attributes"]["actorwork.job_id"] == handle.id
    assert dispatch["attributes"]["actorwork.attempt"] == 1
    # The work sees the trace context it ran in; the worker ran where the pool's kind says.
    assert seen["traceparent"].startswith(f"00-{trace_id}-{submit['span_id']}-")
    assert (run["pid"] == os.getpid()) == (kind == "local")


async def test_each_attempt_of_a_retried_job_is_in_the_trace_and_a_failure_is_an_error(
    tmp_path: Path, spans_directory: Path
) -> None:
    async with JobSystem(_config(tmp_path, "local")) as jobs:
        handle = await jobs.submit(event_works.flaky_context)
        await handle.result(timeout=60)
    spans = _spans(spans_directory)
    runs = sorted(
        (s for s in spans if s["name"].startswith("actorwork.run")),
        key=lambda s: s["attributes"]["actorwork.attempt"],
    )
    dispatches = [s for s in spans if s["name"].startswith("actorwork.dispatch")]
    [submit] = [s for s in spans if s["name"].startswith("actorwork.submit")]
    assert len(dispatches) == 2
    assert [s["status"] for s in runs] == ["ERROR", "UNSET"]
    assert {s["trace_id"] for s in spans} == {submit["trace_id"]}
    assert {s["parent_id"] for s in [*runs, *dispatches]} == {submit["span_id"]}
