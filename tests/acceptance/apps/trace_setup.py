"""A tracer provider for `duro serve|worker --tracing trace_setup:provider` in the tests:
every span, once ended, is appended as one JSON line to the file $DURO_TEST_SPANS and
synced (so a kill -9 loses none that ended)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult


class FileExporter(SpanExporter):
    def __init__(self, path: str) -> None:
        self.path = path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with open(self.path, "a", encoding="utf-8") as f:
            for s in spans:
                f.write(json.dumps({
                    "name": s.name, "trace_id": s.context.trace_id,
                    "span_id": s.context.span_id,
                    "parent_id": s.parent.span_id if s.parent is not None else None,
                    "attributes": dict(s.attributes or {}),
                    "status": s.status.status_code.name, "pid": os.getpid(),
                    "links": [link.context.span_id for link in s.links]}) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return SpanExportResult.SUCCESS


def provider() -> TracerProvider:
    made = TracerProvider()
    made.add_span_processor(SimpleSpanProcessor(FileExporter(os.environ["DURO_TEST_SPANS"])))
    return made
