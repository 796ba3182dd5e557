"""A tracer provider per process for the tracing tests, made by the factory the test
config names, as a user's own factory would (see :mod:`actorwork.tracing`).

Spans go to :data:`EXPORTER`, the SDK's in-memory exporter, in every process, and,
when ``$ACTORWORK_TEST_SPANS`` names a directory, also to a JSON-lines file of the
process's own there (``PID.jsonl``): a process worker's spans reach the test that way.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from actorwork.tracing import Tracing

SPANS_VARIABLE = "ACTORWORK_TEST_SPANS"
EXPORTER = InMemorySpanExporter()
_providers: list[TracerProvider] = []


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
    """This process's provider, made on first use."""
    if not _providers:
        made = TracerProvider()
        made.add_span_processor(SimpleSpanProcessor(EXPORTER))
        directory = os.environ.get(SPANS_VARIABLE)
        if directory:
            exporter = JsonLinesExporter(Path(directory) / f"{os.getpid()}.jsonl")
            made.add_span_processor(SimpleSpanProcessor(exporter))
        _providers.append(made)
    return _providers[0]


def tracing() -> Tracing:
    """The factory ``[jobs] middleware`` names."""
    return Tracing(tracer_provider=provider())
