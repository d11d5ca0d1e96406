"""Tracing (issue 18, item 1): with the OpenTelemetry SDK's in-memory exporter, a run with
a retried step, a timer, a signal and a child yields one trace whose spans nest as
expected; a worker taking the run over (a replay) adds no duplicate span."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path

import pytest

import duro
from tests.conftest import run, wait_for_event

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from duro.tracing import TracingInterceptor, run_span_context

APPS = Path(__file__).parent.parent / "acceptance" / "apps"
if str(APPS) not in sys.path:
    sys.path.insert(0, str(APPS))

import metrics_app  # noqa: E402


def _tracing() -> tuple[TracingInterceptor, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return TracingInterceptor(provider), exporter


async def _spans_until(exporter: InMemorySpanExporter, name: str, count: int
                       ) -> list[ReadableSpan]:
    """The spans once ``count`` named ``name`` are there: a run's waiter may wake as its
    last write commits, a moment before the worker's notification (bounded)."""
    for _ in range(250):
        spans = list(exporter.get_finished_spans())
        if sum(s.name == name for s in spans) >= count:
            return spans
        await asyncio.sleep(0.02)
    return list(exporter.get_finished_spans())


def _by_name(spans: list[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for s in spans:
        out.setdefault(s.name, []).append(s)
    return out


def _parent(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def test_one_trace_whose_spans_nest(any_db_url: str) -> None:
    metrics_app.TRIES.clear()
    tracing, exporter = _tracing()

    async def main() -> tuple[list[ReadableSpan], str, str]:
        async with duro.Engine(any_db_url, poll_interval=0.02,
                               interceptors=[tracing]) as engine:
            handle = await engine.start(metrics_app.busy, "t", id="traced")
            await wait_for_event(handle, "timer_fired")
            await handle.signal("go", 4)
            assert await handle.result(timeout=30) == 5
            kid = await engine.get_handle("t-kid").describe()
            spans = await _spans_until(exporter, "RunWorkflow:metrics_app.busy", 1)
            return spans, (await handle.describe()).run_id, kid.run_id

    spans, run_id, kid_run_id = run(main())
    named = _by_name(spans)
    # One trace: the start's. The signal was sent outside any span: its own trace, which
    # the delivery links to.
    assert len({s.context.trace_id for s in spans if s.name != "SignalWorkflow:go"}) == 1
    (start,) = named["StartWorkflow:metrics_app.busy"]
    (busy,) = named["RunWorkflow:metrics_app.busy"]
    (kid,) = named["RunWorkflow:metrics_app.kid"]
    assert busy.context.span_id == run_span_context(run_id).span_id
    assert _parent(busy) == start.context.span_id
    assert _parent(kid) == busy.context.span_id
    assert kid.context.span_id == run_span_context(kid_run_id).span_id
    flaky = named["RunStep:metrics_app.flaky"]
    assert sorted(s.attributes["duro.attempt"] for s in flaky) == [1, 2]  # type: ignore[index]
    assert [s.status.status_code for s in sorted(
        flaky, key=lambda s: s.attributes["duro.attempt"])] == [  # type: ignore[index]
        StatusCode.ERROR, StatusCode.UNSET]
    assert all(_parent(s) == busy.context.span_id for s in flaky)
    (quick,) = named["RunStep:metrics_app.quick"]
    assert _parent(quick) == kid.context.span_id
    (timer,) = named["Timer"]
    (signal,) = named["Signal:go"]
    (sent,) = named["SignalWorkflow:go"]
    assert _parent(timer) == _parent(signal) == busy.context.span_id
    assert [link.context.span_id for link in signal.links] == [sent.context.span_id]
    assert timer.end_time >= timer.start_time  # type: ignore[operator]
    # The run's span covers its whole life: from before the first step to its end.
    assert busy.start_time <= min(s.start_time for s in flaky)  # type: ignore[type-var]
    assert busy.end_time >= max(s.end_time for s in flaky)  # type: ignore[type-var]


def test_a_takeover_replays_without_duplicate_spans(any_db_url: str) -> None:
    metrics_app.TRIES.clear()
    tracing, exporter = _tracing()

    async def main() -> list[ReadableSpan]:
        async with duro.Engine(any_db_url, poll_interval=0.02,
                               interceptors=[tracing]) as first:
            handle = await first.start(metrics_app.busy, "r", id="replayed")
            await wait_for_event(handle, "timer_fired")
        async with duro.Engine(any_db_url, poll_interval=0.02,
                               interceptors=[tracing]) as second:
            await second.get_handle("replayed").signal("go", 1)
            assert await second.get_handle("replayed").result(timeout=30) == 2
            return await _spans_until(exporter, "RunWorkflow:metrics_app.busy", 1)

    counts = Counter(s.name for s in run(main()))
    assert counts["RunStep:metrics_app.flaky"] == 2  # the two real attempts, once each
    assert counts["Timer"] == 1
    assert counts["RunWorkflow:metrics_app.busy"] == 1
    assert counts["RunWorkflow:metrics_app.kid"] == 1
