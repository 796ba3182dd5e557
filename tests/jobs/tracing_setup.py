"""A tracer provider per process for the tracing tests, set up by the factory the test
config names as the README's factory does: the global provider, set once per process.

Spans go to :data:`EXPORTER`, the SDK's in-memory exporter, in every process, and,
in a process other than the test's (``$ACTORWORK_TEST_PID``), to a JSON-lines file of
its own (``PID.jsonl``) in the directory ``$ACTORWORK_TEST_SPANS``: a process worker's
spans reach the test that way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from actorwork.tracing import Tracing

SPANS_VARIABLE = "ACTORWORK_TEST_SPANS"
TEST_PID_VARIABLE = "ACTORWORK_TEST_PID"
EXPORTER = InMemorySpanExporter()


def describe(span: ReadableSpan) -> dict[str, Any]:
    """What the tests compare of a span, as plain data."""
    context = span.get_span_context()
    assert context is not None
    return {
        "name": span.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": None if span.parent is None else f"{span.parent.span_id:016x}",
        "kind": span.kind.name,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "pid": os.getpid(),
    }


class JsonLinesExporter(SpanExporter):
    """Appends each span, as :func:`describe` has it, to a file: one JSON line each."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self.path.open("a") as file:
            for span in spans:
                file.write(json.dumps(describe(span)) + "\n")
        return SpanExportResult.SUCCESS


def provider() -> TracerProvider:
    """This process's global provider, set up on first use."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        made = TracerProvider()
        made.add_span_processor(SimpleSpanProcessor(EXPORTER))
        directory = os.environ.get(SPANS_VARIABLE)
        if directory and os.environ.get(TEST_PID_VARIABLE) != str(os.getpid()):
            exporter = JsonLinesExporter(Path(directory) / f"{os.getpid()}.jsonl")
            made.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(made)
    found = trace.get_tracer_provider()
    assert isinstance(found, TracerProvider)
    return found


def tracing() -> Tracing:
    """The factory ``[jobs] middleware`` names: spans go to the global provider."""
    provider()
    return Tracing()
