"""The tracing interceptor's spans go to the provider's span processors as the SDK's own
spans do: each processor's ``on_start``, ``_on_ending`` and ``on_end`` in the order they
were added, processors added later included, whatever the provider's active processor;
an ended span is its own ``ReadableSpan`` and reads as the SDK's does."""

from __future__ import annotations

import json
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import (
    ConcurrentMultiSpanProcessor,
    ReadableSpan,
    SpanProcessor,
    TracerProvider,
)
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from duro.tracing._light import LightSpan, close, enter
from duro.tracing._spans import Spans, fast_spans

PARENT = trace.SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331,
                           is_remote=True, trace_flags=trace.TraceFlags(1))


class Log(SpanProcessor):
    """Writes down each call it gets, under its name."""

    def __init__(self, name: str, calls: list[tuple[str, str, str]]) -> None:
        self.name = name
        self.calls = calls

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.calls.append((self.name, "on_start", span.name))

    def _on_ending(self, span: Any) -> None:
        assert span.end_time is not None  # as the SDK: ended, still the live span
        self.calls.append((self.name, "_on_ending", span.name))

    def on_end(self, span: ReadableSpan) -> None:
        self.calls.append((self.name, "on_end", span.name))


class EndOnly(SpanProcessor):
    """Only on_end of its own (the SDK's processors are so)."""

    def __init__(self, calls: list[tuple[str, str, str]]) -> None:
        self.calls = calls

    def on_end(self, span: ReadableSpan) -> None:
        self.calls.append(("end-only", "on_end", span.name))


def _spans(provider: TracerProvider) -> Spans:
    spans = fast_spans(provider.get_tracer("duro"))
    assert spans is not None
    return spans


def _one(spans: Spans, name: str) -> None:
    context = trace.set_span_in_context(trace.NonRecordingSpan(PARENT))
    span = spans.start(name, context, PARENT)
    close(span, enter(span, context), None)


def test_every_processor_in_order_and_those_added_later() -> None:
    calls: list[tuple[str, str, str]] = []
    provider = TracerProvider()
    provider.add_span_processor(Log("a", calls))
    spans = _spans(provider)
    _one(spans, "first")
    assert calls == [("a", "on_start", "first"), ("a", "_on_ending", "first"),
                     ("a", "on_end", "first")]
    calls.clear()
    provider.add_span_processor(EndOnly(calls))  # after spans were made
    provider.add_span_processor(Log("b", calls))
    _one(spans, "second")
    assert calls == [("a", "on_start", "second"), ("b", "on_start", "second"),
                     ("a", "_on_ending", "second"), ("b", "_on_ending", "second"),
                     ("a", "on_end", "second"), ("end-only", "on_end", "second"),
                     ("b", "on_end", "second")]


def test_another_active_processor_is_called_whole() -> None:
    calls: list[tuple[str, str, str]] = []
    active = ConcurrentMultiSpanProcessor()
    provider = TracerProvider(active_span_processor=active, shutdown_on_exit=False)
    spans = _spans(provider)
    active.add_span_processor(Log("c", calls))
    _one(spans, "concurrent")
    provider.shutdown()
    ending = [("c", "_on_ending", "concurrent")] \
        if "_on_ending" in vars(ConcurrentMultiSpanProcessor) else []  # SDK >= 1.3x
    assert calls == [("c", "on_start", "concurrent"), *ending, ("c", "on_end", "concurrent")]


def test_an_ended_span_reads_as_the_sdks() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = _spans(provider)
    context = trace.set_span_in_context(trace.NonRecordingSpan(PARENT))
    ours = spans.start("same", context, PARENT, attributes={"k": "v"},
                       start_time=1_000_000_000)
    assert isinstance(ours, LightSpan)
    ours.add_event("e", {"n": 1}, timestamp=1_500_000_000)
    ours.end(end_time=2_000_000_000)
    sdk = provider.get_tracer("duro").start_span(
        "same", context=context, attributes={"k": "v"}, start_time=1_000_000_000)
    sdk.add_event("e", {"n": 1}, timestamp=1_500_000_000)
    sdk.end(end_time=2_000_000_000)
    mine, theirs = exporter.get_finished_spans()
    assert mine is ours  # no copy: nothing changes it once ended
    assert isinstance(mine, ReadableSpan)
    ours.set_attribute("late", 1)  # ignored, as by the SDK's span once ended
    mine_json, theirs_json = json.loads(mine.to_json()), json.loads(theirs.to_json())
    for fields in (mine_json, theirs_json):
        del fields["context"]["span_id"]
    assert mine_json == theirs_json
    assert dict(mine.attributes or {}) == {"k": "v"}
    assert mine.instrumentation_scope == theirs.instrumentation_scope
    assert (mine.dropped_attributes, mine.dropped_events, mine.dropped_links) == (0, 0, 0)


def test_hooks_of_the_instance_and_mocks_are_called() -> None:
    """A hook set on the processor itself, and a mock processor (a common test double),
    are called as the SDK's multi-processor calls them."""
    from unittest import mock

    calls: list[str] = []
    own = SpanProcessor()
    own.on_start = lambda span, parent_context=None: calls.append("own.on_start")  # type: ignore[method-assign]
    double = mock.Mock(spec=SpanProcessor)
    provider = TracerProvider()
    provider.add_span_processor(own)
    provider.add_span_processor(double)
    _one(_spans(provider), "mocked")
    assert calls == ["own.on_start"]
    assert double.on_start.call_count == 1
    assert double.on_end.call_count == 1


def test_an_ended_span_deep_copies_as_a_readable_span() -> None:
    """A processor may keep a deep copy of what it is given (the SDK's spans allow it):
    the copy is a plain ReadableSpan, not the span with its lock and provider."""
    import copy

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _one(_spans(provider), "copied")
    (span,) = exporter.get_finished_spans()
    copied = copy.deepcopy(span)
    assert type(copied) is ReadableSpan
    assert (copied.name, copied.context, copied.parent, copied.end_time) == (
        span.name, span.context, span.parent, span.end_time)


def test_a_slow_log_handler_holds_up_no_other_span() -> None:
    """A step's code writing an invalid attribute makes the SDK log a warning, in the
    step's thread, with that span locked: another span ends meanwhile all the same."""
    import logging
    import threading

    inside, release = threading.Event(), threading.Event()

    class Blocking(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            inside.set()
            release.wait(10)

    handler = Blocking()
    logger = logging.getLogger("opentelemetry")
    logger.addHandler(handler)
    try:
        spans = _spans(TracerProvider())
        context = trace.set_span_in_context(trace.NonRecordingSpan(PARENT))
        writing = spans.start("writing", context, PARENT)
        other = spans.start("other", context, PARENT)
        writing.set_attribute("first", 1)  # from now on, values are checked (and logged)
        writer = threading.Thread(target=writing.set_attribute, args=("bad", object()))
        writer.start()
        assert inside.wait(10)
        ender = threading.Thread(target=other.end)
        ender.start()
        ender.join(5)
        ended = not ender.is_alive()
        release.set()
        writer.join(10)
        ender.join(10)
    finally:
        release.set()
        logger.removeHandler(handler)
    assert ended, "ending one span waited for another span's log handler"
    assert not other.is_recording()


def test_a_runtime_context_put_in_place_later_is_used() -> None:
    """OpenTelemetry's runtime context replaced after duro was imported (a vendor's
    shim, a test's): the span is current through it, as through the API."""
    from opentelemetry import context as otel_context
    from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext

    saved = otel_context._RUNTIME_CONTEXT
    otel_context._RUNTIME_CONTEXT = ContextVarsRuntimeContext()
    try:
        spans = _spans(TracerProvider())
        made = spans.begin("late", trace.SpanKind.INTERNAL, {})  # the long way, then
        assert made is not None
        span, end = made
        inside = trace.get_current_span() is span
        end(None)
        after = trace.get_current_span()
    finally:
        otel_context._RUNTIME_CONTEXT = saved
    assert inside
    assert after is trace.INVALID_SPAN


def test_a_span_no_code_wrote_to_ends_without_a_lock_of_its_own() -> None:
    spans = _spans(TracerProvider())
    context = trace.set_span_in_context(trace.NonRecordingSpan(PARENT))
    span = spans.start("quiet", context, PARENT)
    assert isinstance(span, LightSpan)
    span.end()
    assert span._lock is None and not span.is_recording()
    span.set_attribute("late", 1)  # after its end: dropped (a lock made, nothing kept)
    assert "late" not in span.attributes


def test_writes_racing_the_end_land_before_it_or_not_at_all() -> None:
    """A sync step's thread writes to its span while the loop ends it (a timeout): what
    the processors were handed never changes afterwards, whoever made the lock."""
    import threading

    seen: list[tuple[int, dict[str, Any]]] = []

    class Snapshot(SpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            seen.append((id(span), dict(span.attributes or {})))

    provider = TracerProvider()
    provider.add_span_processor(Snapshot())
    spans = _spans(provider)
    context = trace.set_span_in_context(trace.NonRecordingSpan(PARENT))
    ended: list[LightSpan] = []
    for round_ in range(200):
        span = spans.start("raced", context, PARENT)
        assert isinstance(span, LightSpan)
        go = threading.Barrier(3)

        def write(span: LightSpan = span, go: threading.Barrier = go, who: int = 0) -> None:
            go.wait()
            for n in range(50):
                span.set_attribute(f"w{who}.{n}", n)

        writers = [threading.Thread(target=write, kwargs={"who": w}) for w in (1, 2)]
        for writer in writers:
            writer.start()
        go.wait()
        ender = threading.Thread(target=span.end) if round_ % 2 else None
        if ender is None:
            span.end()
        else:
            ender.start()
        for thread in [*writers, *([ender] if ender else [])]:
            thread.join(10)
        ended.append(span)
    for span in ended:
        assert not span.is_recording()
    snapshots = dict(seen)
    assert len(snapshots) == len(ended)  # each ended once
    for span in ended:
        assert dict(span.attributes) == snapshots[id(span)]


def test_nothing_is_called_while_the_lock_shared_by_all_spans_is_held(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A collection run by an allocation or a call under that lock could run a
    finalizer that ends a span, and wait for the lock in the thread that holds it: the
    span's own lock and the end time are made before it is taken."""
    import threading
    import time
    import types

    from duro.tracing import _light as light_module

    held: list[str] = []

    def check(what: str, real: Any) -> Any:
        def checked(*args: Any) -> Any:
            if light_module._MAKING.locked():
                held.append(what)
            return real(*args)
        return checked

    monkeypatch.setattr(light_module, "threading", types.SimpleNamespace(
        Lock=check("Lock", threading.Lock)))
    monkeypatch.setattr(light_module, "time", types.SimpleNamespace(
        time_ns=check("time_ns", time.time_ns)))
    spans = _spans(TracerProvider())
    context = trace.set_span_in_context(trace.NonRecordingSpan(PARENT))
    quiet, written = spans.start("quiet", context, PARENT), spans.start("w", context, PARENT)
    assert isinstance(quiet, LightSpan) and isinstance(written, LightSpan)
    written.set_attribute("k", 1)  # makes its lock
    quiet.end()  # ends under the shared lock
    written.end()
    assert held == [] and written._lock is not None and quiet._lock is None


def test_set_attributes_lands_whole_or_not_at_all() -> None:
    spans = _spans(TracerProvider())
    context = trace.set_span_in_context(trace.NonRecordingSpan(PARENT))
    span = spans.start("attrs", context, PARENT)
    span.set_attributes({"a": 1, "b": "two"})
    span.end()
    span.set_attributes({"c": 3})
    assert dict(span.attributes) == {"a": 1, "b": "two"}


def test_a_recorded_root_span_is_as_random_as_the_provider_says() -> None:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = _spans(provider)
    spans.record("root", None, None, start_time=1, end_time=2)
    spans.record("named", None, None, trace_id=5, span_id=7, start_time=1, end_time=2)
    root, named = exporter.get_finished_spans()
    assert root.context.trace_flags.random_trace_id is \
        provider.id_generator.is_trace_id_random()
    assert root.parent is None and root.context.trace_flags.sampled
    assert (named.context.trace_id, named.context.span_id) == (5, 7)
    assert not named.context.trace_flags.random_trace_id
