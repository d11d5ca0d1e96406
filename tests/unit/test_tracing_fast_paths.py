"""The shortcuts duro.tracing takes on its hot paths give what the OpenTelemetry API and
SDK give the long way: a ``traceparent`` read as the W3C propagator reads it, a step
attempt's span context as ``SpanContext`` makes it, processor hooks that do nothing
skipped, the current context set and reset as ``attach``/``detach`` do; and the worker's
step input built from slots equals the one its constructor builds."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import duro
from duro.interceptors import ExecuteStepInput
from duro.tracing import _ids, _light, _spans
from duro.worker import _steps

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


@pytest.mark.parametrize("headers", [
    {"traceparent": f"00-{TRACE}-{SPAN}-01"},
    {"traceparent": f"00-{TRACE}-{SPAN}-00"},
    {"traceparent": f"00-{TRACE}-{SPAN}-03"},
    {"traceparent": f"00-{'0' * 32}-{SPAN}-01"},  # invalid ids: none
    {"traceparent": f"00-{TRACE}-{'0' * 16}-01"},
    {"traceparent": f"00-{TRACE.upper()}-{SPAN}-01"},  # not lowercase: refused
    {"traceparent": f"01-{TRACE}-{SPAN}-01-future"},  # a later version: its own rules
    {"traceparent": f"00-{TRACE}-{SPAN}-01-extra"},  # version 00 with more: refused
    {"traceparent": f"ff-{TRACE}-{SPAN}-01"},
    {"traceparent": f" 00-{TRACE}-{SPAN}-01 "},
    {"traceparent": "garbage"},
    {"traceparent": f"00-{TRACE}-{SPAN}-01", "tracestate": "vendor=value,other=x"},
    {"other": "header"},
    {},
])
def test_a_traceparent_reads_as_the_w3c_propagator_reads_it(headers: dict[str, str]) -> None:
    ctx = TraceContextTextMapPropagator().extract(dict(headers))
    expected = trace.get_current_span(ctx).get_span_context()
    got = _ids.parent_context(headers)
    if not expected.is_valid:
        assert got is None
    else:
        assert got == expected
        assert got.trace_state == expected.trace_state


def test_a_step_attempts_span_context_is_the_one_spancontext_makes() -> None:
    assert _spans._TUPLE_LAYOUT  # this OpenTelemetry API's layout: the shortcut is taken
    provider = TracerProvider()
    spans = _spans.fast_spans(provider.get_tracer("duro"))
    assert spans is not None
    run, _ = _ids.run_entry("a-run", {"traceparent": f"00-{TRACE}-{SPAN}-01"})
    span = spans.run_child("RunStep:x", run, {"duro.attempt": 1})
    assert isinstance(span, _light.LightSpan)
    ctx = span.get_span_context()
    made = trace.SpanContext(run.trace_id, ctx.span_id, False,
                             trace.TraceFlags(trace.TraceFlags.SAMPLED))
    assert ctx == made and type(ctx) is trace.SpanContext
    assert (ctx.trace_id, ctx.span_id, ctx.is_remote, ctx.trace_flags, ctx.trace_state,
            ctx.is_valid) == (made.trace_id, made.span_id, made.is_remote,
                              made.trace_flags, made.trace_state, made.is_valid)
    assert span.parent == run and span.attributes == {"duro.attempt": 1}


class Empty(SpanProcessor):
    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def _on_ending(self, span: Any) -> None:
        """Nothing to do (a docstring only)."""

    def on_end(self, span: Any) -> None:
        return None


class Busy(SpanProcessor):
    def __init__(self) -> None:
        self.started: list[str] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started.append(span.name)


def test_hooks_that_do_nothing_are_not_called_and_all_others_are() -> None:
    simple = SimpleSpanProcessor(InMemorySpanExporter())
    batch = BatchSpanProcessor(InMemorySpanExporter())
    empty, busy = Empty(), Busy()
    on_instance, calls = Empty(), []
    on_instance.on_start = (  # type: ignore[method-assign]
        lambda span, parent_context=None: calls.append(span))
    hooks = _spans._hooks((simple, batch, empty, busy, on_instance), "on_start")
    assert hooks == (busy.on_start, on_instance.on_start)
    assert _spans._hooks((simple, batch, empty, busy), "_on_ending") == ()
    ends = _spans._hooks((simple, empty, busy), "on_end")
    assert ends == (simple.on_end,)  # Empty's returns None and does nothing else
    batch.shutdown()  # type: ignore[no-untyped-call]


def test_the_current_context_is_set_and_reset_as_attach_and_detach_do() -> None:
    span = trace.NonRecordingSpan(trace.SpanContext(1, 2, False))
    base = otel_context.set_value("k", "v")
    outer = otel_context.attach(base)
    try:
        token = _light.enter(span)  # into the current context, its other values kept
        assert trace.get_current_span() is span and otel_context.get_value("k") == "v"
        _light.leave(token)
        assert otel_context.get_current() is base
        token = _light.enter(span, otel_context.Context())  # into the one given
        assert trace.get_current_span() is span and otel_context.get_value("k") is None
        _light.leave(token)
        assert otel_context.get_current() is base
    finally:
        otel_context.detach(outer)


def test_the_workers_step_input_is_the_one_its_constructor_makes() -> None:
    assert [f.name for f in dataclasses.fields(ExecuteStepInput)] == [
        "step", "args", "kwargs", "info"]  # each set by the worker: a new one must be too

    @duro.step(name="fast.paths.step")
    async def add(a: int, b: int = 0) -> int:
        return a + b

    info = duro.StepInfo(workflow_id="w", run_id="r", step="fast.paths.step", seq=3,
                         attempt=2, idempotency_key="r:3", heartbeat_details=None,
                         deadline=None, headers={"h": "v"})
    seen: list[ExecuteStepInput] = []

    class Hook:
        async def execute_step(self, input: ExecuteStepInput, next: Any) -> Any:
            seen.append(input)
            return await next(input)

    class Cmd:
        step = add
        args = (1,)
        kwargs = {"b": 2}

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        return await _steps._intercepted(Cmd(), info, None, loop,  # type: ignore[arg-type]
                                         [Hook()])  # type: ignore[list-item]

    assert asyncio.run(main()) == 3
    assert seen == [ExecuteStepInput(step="fast.paths.step", args=(1,), kwargs={"b": 2},
                                     info=info)]


def test_the_workers_recorded_events_input_is_the_one_its_constructor_makes() -> None:
    from duro._history import NewEvent
    from duro.interceptors import EventsRecordedInput
    from duro.interceptors._worker import events_recorded_input

    # Each field set by the helper, in order: a new field must be set there too.
    assert [f.name for f in dataclasses.fields(EventsRecordedInput)] == [
        "workflow", "workflow_id", "run_id", "namespace", "headers", "events",
        "timers_due", "timers_set", "started_at", "parent_run_id"]
    events = [NewEvent(kind="timer_fired", ts=2.0, op=4)]
    made = events_recorded_input("wf", "w", "r", "ns", {"h": "v"}, events, {4: 1.5},
                                 {4: 1.0}, 0.5, "parent")
    assert made == EventsRecordedInput(
        workflow="wf", workflow_id="w", run_id="r", namespace="ns", headers={"h": "v"},
        events=events, timers_due={4: 1.5}, timers_set={4: 1.0}, started_at=0.5,
        parent_run_id="parent")
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.run_id = "other"  # type: ignore[misc]


def test_a_calls_traceparent_is_written_as_the_w3c_propagator_writes_it() -> None:
    from duro.tracing._interceptor import _with_context

    provider = TracerProvider()
    spans = _spans.fast_spans(provider.get_tracer("duro"))
    assert spans is not None
    state = trace.TraceState([("vendor", "value")])
    parent = trace.SpanContext(int(TRACE, 16), int(SPAN, 16), True,
                               trace.TraceFlags(trace.TraceFlags.SAMPLED), state)
    for context_parent in (None, parent):
        context = (otel_context.Context() if context_parent is None else
                   trace.set_span_in_context(trace.NonRecordingSpan(context_parent)))
        span = spans.start("StartWorkflow:x", context,
                           context_parent, kind=trace.SpanKind.PRODUCER)
        token = _light.enter(span, context)
        try:
            given = {"tenant": "acme", "traceparent": "old", "tracestate": "old=1"}
            expected = {"tenant": "acme"}
            TraceContextTextMapPropagator().inject(expected)
            assert _with_context(given, span) == expected
            assert _with_context(None, span) == {
                k: v for k, v in expected.items() if k != "tenant"}
        finally:
            _light.close(span, token, None)


def _attempt_spans(*processors: Any) -> tuple[_spans.Spans, InMemorySpanExporter]:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for processor in processors:
        provider.add_span_processor(processor)
    spans = _spans.fast_spans(provider.get_tracer("duro"))
    assert spans is not None
    return spans, exporter


@pytest.mark.parametrize("fast", [True, False])
def test_an_attempts_span_is_made_current_and_ended_as_run_child_and_close_do(
        fast: bool) -> None:
    """``Spans.attempt``, with the SDK's own processors (``run_child`` in one call) or
    with a processor that has ``on_start`` (the long way): the same span, current while
    the attempt runs, ended with the context reset; a failed attempt's span is an error
    with the exception."""
    busy = Busy()
    spans, exporter = _attempt_spans(*(() if fast else (busy,)))
    run, _ = _ids.run_entry("an-attempts-run", {"traceparent": f"00-{TRACE}-{SPAN}-01"})
    before = otel_context.get_current()
    for error in (None, ValueError("the step's own error")):
        end = spans.attempt("RunStep:x", run, {"duro.attempt": 1})
        assert end is not None
        current = trace.get_current_span()
        assert isinstance(current, _light.LightSpan) and current.is_recording()
        assert current.get_span_context().trace_id == run.trace_id
        end(error)
        assert otel_context.get_current() is before
        assert not current.is_recording()
    assert (spans.pipeline()[0] == ()) is fast  # no on_start: nothing called as it begins
    ok, failed = exporter.get_finished_spans()
    assert busy.started == ([] if fast else ["RunStep:x", "RunStep:x"])
    for span in (ok, failed):
        assert span.name == "RunStep:x" and span.parent == run
        assert dict(span.attributes or {}) == {"duro.attempt": 1}
        assert span.context.is_valid and not span.context.is_remote
        assert span.start_time is not None and span.end_time is not None
        assert span.start_time <= span.end_time
    assert ok.status.status_code is trace.StatusCode.UNSET and not ok.events
    assert failed.status.status_code is trace.StatusCode.ERROR
    assert failed.status.description == "ValueError: the step's own error"
    assert [e.name for e in failed.events] == ["exception"]


def test_an_attempt_under_a_disabled_tracer_takes_the_generic_path() -> None:
    spans, _ = _attempt_spans()
    run, _ = _ids.run_entry("a-disabled-run", None)
    config = spans.tracer._tracer_config
    spans.tracer._tracer_config = dataclasses.replace(config, is_enabled=False)
    try:
        assert not spans.enabled()
        assert spans.attempt("RunStep:x", run, {}) is None
    finally:
        spans.tracer._tracer_config = config
    assert spans.enabled()


def test_a_not_sampled_attempts_span_is_current_and_not_recorded() -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF, remote_parent_sampled=ALWAYS_OFF))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = _spans.fast_spans(provider.get_tracer("duro"))
    assert spans is not None
    run, _ = _ids.run_entry("a-dropped-run", None)
    end = spans.attempt("RunStep:x", run, {})
    assert end is not None
    current = trace.get_current_span()
    assert not current.is_recording() and current.get_span_context().is_valid
    assert not current.get_span_context().trace_flags.sampled
    end(None)
    assert trace.get_current_span() is trace.INVALID_SPAN
    assert exporter.get_finished_spans() == ()


def test_a_client_calls_input_with_headers_is_the_one_replace_makes() -> None:
    from duro.interceptors import QueryInput, SignalInput, StartInput, UpdateInput
    from duro.tracing._interceptor import _with_headers

    # A start is copied field by field, its setters taken in this order: a new or moved
    # field must be handled there too.
    assert [f.name for f in dataclasses.fields(StartInput)] == [
        "workflow", "args", "kwargs", "workflow_id", "signal", "update", "headers",
        "search_attributes"]
    headers = {"traceparent": f"00-{TRACE}-{SPAN}-01"}
    inputs: list[Any] = [
        StartInput(workflow="w", args=(1,), kwargs={"k": 2}, workflow_id="id", signal="s",
                   headers={"old": "h"}, search_attributes={"a": 1}),
        SignalInput(workflow_id="id", name="n", payload=[1], signal_id="d"),
        UpdateInput(workflow_id="id", name="u", args=(), update_id=None, timeout=1.0),
        QueryInput(workflow_id="id", run_id=None, name="q", args=(3,)),
    ]
    for given in inputs:
        made = _with_headers(given, headers)
        assert made == dataclasses.replace(given, headers=headers)
        assert type(made) is type(given) and made.headers is headers

    @dataclasses.dataclass(frozen=True, kw_only=True, slots=True)
    class Wider(StartInput):
        extra: int = 7

    wider = Wider(workflow="w", args=(), kwargs={}, workflow_id=None)
    made = _with_headers(wider, headers)  # a subclass: through replace, extra kept
    assert type(made) is Wider and made.extra == 7 and made.headers == headers


@pytest.mark.parametrize("fast", [True, False])
def test_a_client_calls_span_is_the_one_start_makes_made_current(fast: bool) -> None:
    """``Spans.begin`` (a client call's span), with the SDK's own processors or with a
    processor that has ``on_start``: a root span of a new trace without a current span,
    else a child of the current one with its trace state, as ``Spans.start`` makes
    them; current until its end, which restores the context and marks a failed call."""
    busy = Busy()
    spans, exporter = _attempt_spans(*(() if fast else (busy,)))
    state = trace.TraceState([("vendor", "value")])
    remote = trace.SpanContext(int(TRACE, 16), int(SPAN, 16), True,
                               trace.TraceFlags(trace.TraceFlags.SAMPLED), state)
    for parent in (None, remote):
        outer = otel_context.attach(
            otel_context.Context() if parent is None
            else trace.set_span_in_context(trace.NonRecordingSpan(parent)))
        try:
            before = otel_context.get_current()
            reference = spans.start("reference", before, parent,
                                    kind=trace.SpanKind.PRODUCER)
            made = spans.begin("StartWorkflow:x", trace.SpanKind.PRODUCER, {"k": "v"})
            assert made is not None
            span, end = made
            assert trace.get_current_span() is span
            ctx, ref = span.get_span_context(), reference.get_span_context()
            assert ctx.is_valid and type(ctx) is trace.SpanContext
            assert ctx.trace_flags == ref.trace_flags and ctx.trace_state == ref.trace_state
            assert (ctx.trace_id == remote.trace_id) is (parent is not None)
            assert isinstance(span, _light.LightSpan)
            assert span.parent == parent and span.kind is trace.SpanKind.PRODUCER
            end(RuntimeError("the call failed") if parent else None)
            assert otel_context.get_current() is before
            reference.end()
        finally:
            otel_context.detach(outer)
    assert (spans.pipeline()[0] == ()) is fast  # no on_start: nothing called as it begins
    root, failed = (s for s in exporter.get_finished_spans() if s.name != "reference")
    assert root.status.status_code is trace.StatusCode.UNSET
    assert dict(root.attributes or {}) == {"k": "v"}
    assert failed.status.status_code is trace.StatusCode.ERROR
    assert busy.started == ([] if fast else ["reference", "StartWorkflow:x"] * 2)


def test_a_client_calls_root_span_draws_its_ids_as_the_sdks_generator_does() -> None:
    """``Spans.begin``'s one-call path for a root span (no current span, the SDK's random
    generator, its stock sampler, no ``on_start``): the trace id and then the span id
    drawn as ``RandomIdGenerator`` draws them, flagged as its random ids are, recorded
    and ended as ``Spans.start``'s span; a value that is not a span in the context's
    span slot counts as none, as for ``trace.get_current_span``."""
    import random

    from opentelemetry.trace.propagation import _SPAN_KEY

    spans, exporter = _attempt_spans()
    generator = spans.ids
    for current in (otel_context.Context(), otel_context.Context({_SPAN_KEY: "not a span"})):
        outer = otel_context.attach(current)
        try:
            random.seed(1234)
            expected = (generator.generate_trace_id(), generator.generate_span_id())
            random.seed(1234)
            made = spans.begin("StartWorkflow:x", trace.SpanKind.PRODUCER, {"k": "v"})
            assert made is not None
            span, end = made
            assert end is span  # the one-call path: the span is its own end
            ctx = span.get_span_context()
            assert (ctx.trace_id, ctx.span_id) == expected
            assert ctx.trace_flags == trace.TraceFlags(
                trace.TraceFlags.SAMPLED | trace.TraceFlags.RANDOM_TRACE_ID)
            assert span.parent is None and trace.get_current_span() is span
            end(None)
            assert otel_context.get_current() is current
        finally:
            otel_context.detach(outer)
    assert [s.name for s in exporter.get_finished_spans()] == ["StartWorkflow:x"] * 2


def test_a_root_span_under_a_length_limit_has_its_values_cut_as_start_cuts_them() -> None:
    """With the provider's attribute values cut to a length, ``Spans.begin`` leaves its
    one-call path (which keeps the caller's dict as it is) for ``Spans.start``."""
    from opentelemetry.sdk.trace import SpanLimits

    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_span_attribute_length=4))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = _spans.fast_spans(provider.get_tracer("duro"))
    assert spans is not None
    made = spans.begin("StartWorkflow:x", trace.SpanKind.PRODUCER, {"k": "a long value"})
    assert made is not None
    _, end = made
    end(None)
    reference = spans.start("reference", otel_context.Context(), None,
                            attributes={"k": "a long value"})
    reference.end()
    mine, theirs = exporter.get_finished_spans()
    assert dict(mine.attributes or {}) == dict(theirs.attributes or {}) == {"k": "a lo"}


def test_a_client_call_whose_headers_cannot_be_written_ends_its_span() -> None:
    """A failure while the call's ``traceparent`` is written (here: headers whose items
    cannot be read) fails the call, ends its span as failed and restores the context."""
    from collections.abc import Iterator, Mapping

    from duro.interceptors import SignalInput
    from duro.tracing import TracingInterceptor

    class Broken(Mapping[str, str]):
        def __getitem__(self, key: str) -> str:
            raise KeyError(key)

        def __iter__(self) -> Iterator[str]:
            raise RuntimeError("unreadable headers")

        def __len__(self) -> int:
            return 1

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = TracingInterceptor(provider)
    called: list[Any] = []

    async def next(input: Any) -> None:
        called.append(input)

    before = otel_context.get_current()
    with pytest.raises(RuntimeError, match="unreadable headers"):
        asyncio.run(tracing.signal(SignalInput(workflow_id="w", name="go", payload=None,
                                               headers=Broken()), next))
    assert called == []
    assert otel_context.get_current() is before
    (span,) = exporter.get_finished_spans()
    assert span.name == "SignalWorkflow:go"
    assert span.status.status_code is trace.StatusCode.ERROR


def test_a_failed_runs_span_is_an_error_with_its_message() -> None:
    import time

    from duro._history import EventKind, NewEvent
    from duro.errors import ErrorInfo
    from duro.interceptors import EventsRecordedInput
    from duro.tracing import TracingInterceptor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = TracingInterceptor(provider)
    now = time.time()
    error = ErrorInfo.from_exception(ValueError("the order was empty")).to_payload()
    for run_id, kind, data in (("r-failed", EventKind.RUN_FAILED, error),
                               ("r-done", EventKind.RUN_COMPLETED, None)):
        tracing.events_recorded(EventsRecordedInput(
            workflow="orders", workflow_id="w-" + run_id, run_id=run_id, namespace="default",
            headers={}, events=[NewEvent(kind=kind, ts=now, data=data)], timers_due={},
            started_at=now - 1))
    failed, done = exporter.get_finished_spans()
    assert failed.name == done.name == "RunWorkflow:orders"
    assert failed.status.status_code is trace.StatusCode.ERROR
    assert failed.status.description == "the order was empty"
    assert dict(failed.attributes or {})["duro.status"] == "failed"
    assert done.status.status_code is trace.StatusCode.UNSET
    context = failed.get_span_context()
    assert context is not None and context.span_id == _ids.run_span_id("r-failed")


@pytest.mark.parametrize("flags", [
    trace.TraceFlags.SAMPLED, trace.TraceFlags.SAMPLED | trace.TraceFlags.RANDOM_TRACE_ID])
@pytest.mark.parametrize("remote", [True, False])
def test_a_child_spans_flags_are_the_sdks(flags: int, remote: bool) -> None:
    """A child span's flags, on every path that makes one (start, a step attempt's,
    a span recorded after the fact), are those the SDK's own tracer gives it under the
    same parent (from 1.43: the parent's random-trace-id flag, not the generator's)."""
    provider = TracerProvider()
    spans = _spans.fast_spans(provider.get_tracer("duro"))
    assert spans is not None
    parent = trace.SpanContext(int(TRACE, 16), int(SPAN, 16), remote, trace.TraceFlags(flags))
    context = trace.set_span_in_context(trace.NonRecordingSpan(parent))
    sdk = provider.get_tracer("sdk").start_span("sdk", context=context)
    expected = sdk.get_span_context().trace_flags
    made = [spans.start("start", context, parent), spans.run_child("child", parent, {})]
    assert [span.get_span_context().trace_flags for span in made] == [expected] * 2
    if remote:  # a run's span context's shape
        end = spans.attempt("attempt", parent, {})
        assert isinstance(end, _light.LightSpan)
        assert end.get_span_context().trace_flags == expected
        end(None)


@pytest.mark.parametrize(("traceparent", "flags"), [
    (f"00-{TRACE}-{SPAN}-03", 3), (f"00-{TRACE}-{SPAN}-01", 1), (f"00-{TRACE}-{SPAN}-00", 0),
    (f"00-{TRACE}-{SPAN}-02", 2), (f"00-{TRACE}-{SPAN}-09", 1), (None, 1)])
def test_a_runs_span_context_is_sampled_and_random_as_its_start_was(
        traceparent: str | None, flags: int) -> None:
    """A run in its start's trace carries the start's sampled and random-trace-id flags
    on (as the SDK's children do, 1.43 on: other bits are not carried); a run in a trace
    of its own (its id a digest) is sampled, not random."""
    headers = {"traceparent": traceparent} if traceparent else None
    ctx = _ids.run_span_context(f"run-{flags}-{traceparent}", headers)
    assert ctx.trace_flags == flags


def test_a_step_under_a_run_its_sampler_dropped_is_not_recorded() -> None:
    """The start's sampler dropped it (``-00``): the step's span is a non-recording span
    in the run's trace, current while the step runs (its calls carry the decision on),
    and nothing is exported."""
    spans, exporter = _attempt_spans()
    run = _ids.run_span_context("dropped", {"traceparent": f"00-{TRACE}-{SPAN}-00"})
    before = otel_context.get_current()
    end = spans.attempt("RunStep:s", run, {"k": "v"})
    assert end is not None
    current = trace.get_current_span()
    assert not current.is_recording()
    ctx = current.get_span_context()
    assert ctx.trace_id == int(TRACE, 16) and not ctx.trace_flags.sampled
    end(None)
    assert otel_context.get_current() is before
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize(("sampler", "sampled"), [
    ("parent-based-on", True), ("parent-based-off", False), ("always-off", False),
    ("ratio-all", True), ("ratio-none", False)])
def test_a_run_in_a_trace_of_its_own_takes_its_samplers_decision(
        sampler: str, sampled: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run without a ``traceparent``: its span context is flagged as the sampler
    decides on its span (the root of its trace), the steps under it follow, and its own
    span, recorded with that decision, asks the sampler no more."""
    from opentelemetry.sdk.trace.sampling import (
        ALWAYS_OFF,
        ALWAYS_ON,
        Decision,
        ParentBased,
        TraceIdRatioBased,
    )

    made = {"parent-based-on": ParentBased(ALWAYS_ON), "parent-based-off": ParentBased(
        ALWAYS_OFF), "always-off": ALWAYS_OFF, "ratio-all": ParentBased(
        TraceIdRatioBased(1.0)), "ratio-none": ParentBased(TraceIdRatioBased(0.0))}[sampler]
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=made)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = _spans.fast_spans(provider.get_tracer("duro"))
    assert spans is not None
    derived, parent = _ids.run_entry(f"own-{sampler}")
    assert parent is None and derived.trace_flags.sampled  # before the sampler's say
    run, decided = spans.own_trace(derived, "RunWorkflow:w", {"duro.run_id": "r"})
    decision = decided.decision
    assert (run.trace_id, run.span_id, run.is_remote) == (
        derived.trace_id, derived.span_id, True)
    assert run.trace_flags.sampled is sampled and not run.trace_flags.random_trace_id
    assert (decision is Decision.RECORD_AND_SAMPLE) is sampled
    end = spans.attempt("RunStep:s", run, {})
    assert end is not None
    assert trace.get_current_span().is_recording() is sampled
    end(None)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("asked again")

    monkeypatch.setattr(made, "should_sample", refuse)  # ALWAYS_OFF is shared: undone
    spans.static = None  # no shortcut either: the answer given is the one taken
    spans.record("RunWorkflow:w", None, None, trace_id=run.trace_id, span_id=run.span_id,
                 start_time=1, end_time=2, decided=decided)
    names = [s.name for s in exporter.get_finished_spans()]
    assert names == (["RunStep:s", "RunWorkflow:w"] if sampled else [])


def test_a_runs_own_trace_decision_is_asked_once_and_let_go_at_its_end() -> None:
    """The interceptor asks the sampler once per run in a trace of its own (its attempts
    and its end take that answer) and forgets the run once its span is recorded."""
    asked: list[str] = []
    tracing, exporter = _own_tracing(_counting_ratio(asked))
    info = duro.StepInfo(workflow_id="wf", run_id="own-once", step="s", seq=1, attempt=1,
                         idempotency_key="k", workflow="flow")
    for _ in range(3):
        end = tracing.attempt_started(info)
        end(None)
    assert asked == ["RunWorkflow:flow"] and "own-once" in tracing._own
    _ended(tracing, "own-once")
    assert asked == ["RunWorkflow:flow"] and "own-once" not in tracing._own
    assert sorted(s.name for s in exporter.get_finished_spans()) == [
        "RunStep:s", "RunStep:s", "RunStep:s", "RunWorkflow:flow"]


def _own_tracing(root: Any) -> tuple[Any, InMemorySpanExporter]:
    from opentelemetry.sdk.trace.sampling import ParentBased

    from duro.tracing import TracingInterceptor

    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(root))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return TracingInterceptor(provider), exporter


def _counting_ratio(asked: list[str]) -> Any:
    """A ratio sampler keeping every trace, which notes the name of each span it is
    asked about in ``asked``."""
    from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

    root = TraceIdRatioBased(1.0)
    decide = root.should_sample

    def counting(*args: Any, **kwargs: Any) -> Any:
        asked.append(args[2] if len(args) > 2 else kwargs["name"])
        return decide(*args, **kwargs)

    root.should_sample = counting  # type: ignore[method-assign]
    return root


def _adding(extra: dict[str, Any], state: Any = None) -> Any:
    """A sampler keeping every span, giving it the attributes it was asked with updated
    by ``extra``, and ``state`` as its trace state."""
    from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult

    class Adding(Sampler):
        def should_sample(self, parent_context: Any, trace_id: int, name: str,
                          kind: Any = None, attributes: Any = None, links: Any = None,
                          trace_state: Any = None) -> SamplingResult:
            return SamplingResult(Decision.RECORD_AND_SAMPLE,
                                  {**(attributes or {}), **extra}, state)

        def get_description(self) -> str:
            return "Adding"

    return Adding()


def _ended(tracing: Any, run_id: str, workflow: str = "flow", **more: Any) -> None:
    from duro._history import EventKind, NewEvent
    from duro.interceptors import EventsRecordedInput

    tracing.events_recorded(EventsRecordedInput(
        workflow=workflow, workflow_id="wf", run_id=run_id, namespace="default",
        headers=more.pop("headers", {}), timers_due={}, started_at=1.0,
        events=[NewEvent(kind=EventKind.RUN_COMPLETED, ts=2.0)], **more))


def test_a_run_in_a_trace_of_its_own_keeps_what_its_sampler_gave() -> None:
    """The sampler's answer on an untraced run's span is whole: the attributes it adds
    are on the run's span (beside the run's status) and the trace state it gives is the
    run's, its step spans' (as the SDK's parent-based samplers give a child its
    parent's) and its span's."""
    state = trace.TraceState([("ot", "th:8")])
    tracing, exporter = _own_tracing(_adding({"sampler.p": 0.5}, state))
    info = duro.StepInfo(workflow_id="wf", run_id="own-giving", step="s", seq=1,
                         attempt=1, idempotency_key="k", workflow="flow")
    tracing.attempt_started(info)(None)
    _ended(tracing, "own-giving")
    step, run_span = exporter.get_finished_spans()
    assert run_span.name == "RunWorkflow:flow" and run_span.attributes is not None
    assert dict(run_span.attributes) == {
        "sampler.p": 0.5, "duro.workflow": "flow", "duro.workflow_id": "wf",
        "duro.run_id": "own-giving", "duro.status": "completed"}
    assert run_span.context is not None and step.context is not None
    assert run_span.context.trace_state == step.context.trace_state == state
    assert step.parent is not None and step.parent.trace_state == state


def test_a_runs_step_spans_carry_its_starts_trace_state() -> None:
    """A run in its start's trace carries the start's ``tracestate`` on to its step
    spans, as the SDK's children carry their parent's (they used to carry none)."""
    spans, exporter = _attempt_spans()
    headers = {"traceparent": f"00-{TRACE}-{SPAN}-01", "tracestate": "ot=th:8,k=v"}
    run = _ids.run_span_context("stated", headers)
    assert run.trace_state == trace.TraceState([("ot", "th:8"), ("k", "v")])
    for fast in (True, False):
        if not fast:
            spans._fast_bits = None  # the long way: run_child
        end = spans.attempt("RunStep:s", run, {})
        assert end is not None
        end(None)
    assert [s.context.trace_state for s in exporter.get_finished_spans()  # type: ignore[union-attr]
            ] == [run.trace_state] * 2


def test_an_untraced_runs_decision_is_not_kept_without_its_workflows_name() -> None:
    """A step queued by a duro that did not name its workflow (its task's info has no
    ``workflow``): its attempt asks under an empty name and the answer is not kept, so
    the run's end asks again under the run's own name. A tracer a configurator disabled
    asks nothing."""
    asked: list[str] = []
    tracing, exporter = _own_tracing(_counting_ratio(asked))
    info = duro.StepInfo(workflow_id="wf", run_id="own-old", step="s", seq=1, attempt=1,
                         idempotency_key="k")
    tracing.attempt_started(info)(None)
    assert asked == ["RunWorkflow:"] and "own-old" not in tracing._own
    _ended(tracing, "own-old")
    assert asked == ["RunWorkflow:", "RunWorkflow:flow"]
    assert len(exporter.get_finished_spans()) == 2

    config = tracing.spans.tracer._tracer_config
    tracing.spans.tracer._tracer_config = dataclasses.replace(config, is_enabled=False)
    asked.clear()
    tracing.attempt_started(dataclasses.replace(info, run_id="own-off", workflow="flow"))(
        None)
    _ended(tracing, "own-off")
    assert asked == [] and "own-off" not in tracing._own


def test_a_child_runs_span_carries_its_starts_trace_state() -> None:
    """A child run in its start's trace (its parent's headers carried on): its run's
    span carries the start's ``tracestate``, as its steps' spans do."""
    from duro.tracing import TracingInterceptor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = TracingInterceptor(provider)
    headers = {"traceparent": f"00-{TRACE}-{SPAN}-01", "tracestate": "vendor=abc"}
    info = duro.StepInfo(workflow_id="kid", run_id="kid-stated", step="s", seq=1,
                         attempt=1, idempotency_key="k", workflow="flow", headers=headers)
    tracing.attempt_started(info)(None)
    _ended(tracing, "kid-stated", headers=headers, parent_run_id="parent-stated")
    step, run_span = exporter.get_finished_spans()
    state = trace.TraceState([("vendor", "abc")])
    assert run_span.parent is not None and run_span.context is not None
    assert run_span.parent.span_id == _ids.run_span_id("parent-stated")
    assert run_span.parent.trace_state == run_span.context.trace_state == state
    assert step.context is not None and step.context.trace_state == state


def test_an_untraced_runs_span_takes_its_samplers_attributes_over_its_own() -> None:
    """What the sampler gave back for an attribute it was asked with is what the run's
    span has (the SDK takes the sampler's attributes); the run's status, which it was not
    asked about, is added. A sampler giving back what it was asked with leaves nothing
    to keep for the run but its decision."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision

    tracing, exporter = _own_tracing(_adding({"duro.workflow_id": "renamed"}))
    info = duro.StepInfo(workflow_id="wf", run_id="own-renamed", step="s", seq=1,
                         attempt=1, idempotency_key="k", workflow="flow")
    tracing.attempt_started(info)(None)
    _ended(tracing, "own-renamed")
    run_span = exporter.get_finished_spans()[-1]
    assert run_span.attributes is not None
    assert run_span.attributes["duro.workflow_id"] == "renamed"
    assert run_span.attributes["duro.status"] == "completed"

    plain, _ = _own_tracing(ALWAYS_ON)
    spans = plain.spans
    assert spans is not None and spans.static is not None
    spans.static = None  # asked, as any sampler: its SamplingResult wraps what it was given
    _, decided = spans.own_trace(_ids.run_entry("own-plain")[0], "RunWorkflow:flow",
                                 {"duro.run_id": "own-plain"})
    assert decided.attributes is None and decided.decision is Decision.RECORD_AND_SAMPLE


def test_an_untraced_run_its_sampler_records_only_is_recorded_not_exported() -> None:
    """A sampler's RECORD_ONLY on an untraced run: the run's span is recorded (a
    processor's ``on_end`` gets it) but not sampled (not exported), and its steps, under a
    run not sampled, are dropped, as the SDK's children of such a root are."""
    from opentelemetry.sdk.trace.sampling import Decision, StaticSampler

    ended: list[str] = []

    class Seeing(SpanProcessor):
        def on_end(self, span: Any) -> None:
            ended.append(span.name)

    tracing, exporter = _own_tracing(StaticSampler(Decision.RECORD_ONLY))
    tracing.tracer.span_processor.add_span_processor(Seeing())
    info = duro.StepInfo(workflow_id="wf", run_id="own-recorded", step="s", seq=1,
                         attempt=1, idempotency_key="k", workflow="flow")
    tracing.attempt_started(info)(None)
    _ended(tracing, "own-recorded")
    assert ended == ["RunWorkflow:flow"]
    assert exporter.get_finished_spans() == ()
