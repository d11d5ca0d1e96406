"""duro hands its ended spans to the SDK's ``SimpleSpanProcessor`` doing what the
processor's own ``on_end`` does, without its calls (``_spans._ender``): the exporter sees
the same span, under the same context (instrumentation suppressed, the rest of the
context kept), a failure is logged as the SDK logs it, and whatever the fast path does
not know (a processor shut down, a subclass, a span recorded but not sampled, another
runtime context) goes through the processor's own ``on_end``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

from duro.tracing._light import LightSpan
from duro.tracing._spans import Spans, fast_spans

PARENT = trace.SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331,
                           is_remote=True, trace_flags=trace.TraceFlags(1))
SUPPRESS = otel_context._SUPPRESS_INSTRUMENTATION_KEY
OTHER = otel_context.create_key("test-other")


class Seen(SpanExporter):
    """Writes down each export: the spans' names, whether instrumentation was
    suppressed, and another key of the context, as the exporter saw them."""

    def __init__(self, fail: bool = False) -> None:
        self.seen: list[tuple[tuple[str, ...], object, object]] = []
        self.fail = fail

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.seen.append((tuple(s.name for s in spans), otel_context.get_value(SUPPRESS),
                          otel_context.get_value(OTHER)))
        if self.fail:
            raise RuntimeError("collector unreachable")
        return SpanExportResult.SUCCESS


def _setup(processor: SimpleSpanProcessor, sampler: Sampler | None = None) -> Spans:
    provider = TracerProvider(sampler=sampler) if sampler is not None else TracerProvider()
    provider.add_span_processor(processor)
    spans = fast_spans(provider.get_tracer("duro"))
    assert spans is not None
    return spans


def _end_one(spans: Spans, name: str) -> LightSpan:
    span = spans.start(name, trace.set_span_in_context(trace.NonRecordingSpan(PARENT)),
                       PARENT)
    assert isinstance(span, LightSpan)
    span.end()
    return span


def _twin(exporter: Seen, span: LightSpan) -> None:
    """The SDK's own ``on_end`` given the same span, on another processor."""
    SimpleSpanProcessor(exporter).on_end(span)


def test_the_fast_path_is_taken_for_the_sdks_own_processor() -> None:
    """Else every other test here would pass through the SDK's code, proving nothing."""
    spans = _setup(SimpleSpanProcessor(Seen()))
    (end,) = spans.pipeline()[2]
    assert getattr(end, "__name__", "") == "simple_on_end"


@pytest.mark.parametrize("with_other", [False, True], ids=["empty-context", "a-key-set"])
def test_the_exporter_sees_what_the_sdks_on_end_shows_it(with_other: bool) -> None:
    ours, theirs = Seen(), Seen()
    spans = _setup(SimpleSpanProcessor(ours))
    token = otel_context.attach(otel_context.set_value(OTHER, "kept")) if with_other \
        else None
    try:
        before = otel_context.get_current()
        span = _end_one(spans, "RunStep:x")
        assert otel_context.get_current() is before  # put back as it was
        _twin(theirs, span)
    finally:
        if token is not None:
            otel_context.detach(token)
    assert ours.seen == theirs.seen == [(("RunStep:x",), True, "kept" if with_other
                                         else None)]


def test_an_export_that_raises_is_logged_as_the_sdk_logs_it(
        caplog: pytest.LogCaptureFixture) -> None:
    ours = Seen(fail=True)
    spans = _setup(SimpleSpanProcessor(ours))
    before = otel_context.get_current()
    with caplog.at_level(logging.ERROR, logger="opentelemetry.sdk.trace.export"):
        span = _end_one(spans, "failing")
        _twin(Seen(fail=True), span)
    assert otel_context.get_current() is before
    assert len(ours.seen) == 1
    records = [r for r in caplog.records if r.name == "opentelemetry.sdk.trace.export"]
    assert [r.getMessage() for r in records] == ["Exception while exporting Span."] * 2
    assert all(r.exc_info is not None and isinstance(r.exc_info[1], RuntimeError)
               for r in records)


def test_a_processor_shut_down_does_as_the_sdks_on_end_does() -> None:
    """The SDK changed here (1.45 refuses a span once its processor is shut down; 1.43
    and 1.44 still export it): whichever it is, the same as its own ``on_end``."""
    ours, theirs = Seen(), Seen()
    processor, twin = SimpleSpanProcessor(ours), SimpleSpanProcessor(theirs)
    spans = _setup(processor)
    _end_one(spans, "before")
    processor.shutdown()
    twin.shutdown()
    span = _end_one(spans, "after")
    twin.on_end(span)
    assert ours.seen[0][0] == ("before",)
    assert ours.seen[1:] == theirs.seen  # after the shutdown: as the SDK's


class RecordOnly(Sampler):
    """Records every span, samples none: such a span reaches ``on_end``, which must not
    export it."""

    def should_sample(self, parent_context: Any, trace_id: int, name: str,
                      kind: Any = None, attributes: Any = None, links: Any = None,
                      trace_state: Any = None) -> SamplingResult:
        return SamplingResult(Decision.RECORD_ONLY, attributes)

    def get_description(self) -> str:
        return "RecordOnly"


def test_a_span_recorded_but_not_sampled_is_not_exported() -> None:
    exporter = Seen()
    spans = _setup(SimpleSpanProcessor(exporter), RecordOnly())
    span = _end_one(spans, "recorded")
    assert not span.get_span_context().trace_flags.sampled
    assert exporter.seen == []


def test_the_sdks_internal_metrics_on_take_the_processors_own_on_end() -> None:
    """When and with what the SDK tells its metrics of an export changed between versions
    (before the export, or after it with its error): with them on, the processor's own
    ``on_end`` does it, once a span."""
    told: list[tuple[Any, ...]] = []

    class Metrics:
        def finish_items(self, *args: Any) -> None:
            told.append(args)

        def drop_items(self, *args: Any) -> None:
            told.append(("dropped", *args))

    exporter = Seen()
    processor = SimpleSpanProcessor(exporter)
    processor._metrics = Metrics()  # type: ignore[assignment]  # internal metrics on
    spans = _setup(processor)
    (end,) = spans.pipeline()[2]
    assert end == processor.on_end  # its own, bound
    _end_one(spans, "a")
    _end_one(spans, "b")
    assert [names for names, _, _ in exporter.seen] == [("a",), ("b",)]
    assert len(told) == 2 and all(args[0] == 1 for args in told)


def test_a_subclass_and_an_on_end_of_the_instance_are_called_as_they_are() -> None:
    calls: list[str] = []

    class Mine(SimpleSpanProcessor):
        def on_end(self, span: ReadableSpan) -> None:
            calls.append("subclass " + span.name)

    patched = SimpleSpanProcessor(Seen())
    patched.on_end = lambda span: calls.append("instance " + span.name)  # type: ignore[method-assign]
    for processor in (Mine(Seen()), patched):
        _end_one(_setup(processor), "s")
    assert calls == ["subclass s", "instance s"]


def test_another_runtime_context_goes_through_the_processors_own_on_end() -> None:
    exporter = Seen()
    spans = _setup(SimpleSpanProcessor(exporter))
    saved = otel_context._RUNTIME_CONTEXT
    otel_context._RUNTIME_CONTEXT = ContextVarsRuntimeContext()  # not the one imported
    try:
        _end_one(spans, "elsewhere")
        suppressed_after = otel_context.get_value(SUPPRESS)
    finally:
        otel_context._RUNTIME_CONTEXT = saved
    assert exporter.seen == [(("elsewhere",), True, None)]
    assert suppressed_after is None


class Halt(BaseException):
    """Not an ``Exception``: the SDK lets it through, and so must duro."""


def test_an_export_raising_a_base_exception_propagates_with_the_context_restored() -> None:
    class Halting(Seen):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            super().export(spans)
            raise Halt

    exporter = Halting()
    spans = _setup(SimpleSpanProcessor(exporter))
    before = otel_context.get_current()
    with pytest.raises(Halt):
        _end_one(spans, "halting")
    assert otel_context.get_current() is before  # suppression not left switched on
    assert exporter.seen == [(("halting",), True, None)]


def test_an_on_end_using_names_the_sdks_never_did_is_called_as_it_is(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A later SDK whose ``on_end`` does something more (here: a name the SDK's never
    used) is called as it is, not replaced by what duro knows of the older ones."""
    calls: list[str] = []

    def on_end(self: SimpleSpanProcessor, span: ReadableSpan) -> None:
        calls.append(span.name)
        self.span_exporter.export((span,))
        self.something_new()  # type: ignore[attr-defined]

    monkeypatch.setattr(SimpleSpanProcessor, "on_end", on_end)
    monkeypatch.setattr(SimpleSpanProcessor, "something_new", lambda self: None,
                        raising=False)
    exporter = Seen()
    _end_one(_setup(SimpleSpanProcessor(exporter)), "newer")
    assert calls == ["newer"]
    assert exporter.seen == [(("newer",), None, None)]  # its own: no suppression added
