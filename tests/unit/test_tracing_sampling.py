"""The tracing interceptor's spans decide sampling as the provider's sampler decides: the
stock samplers (parent-based over always-on/off, the SDK's default) without asking them
per span, any other sampler by asking it."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)

from duro.tracing._spans import Spans, fast_spans

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
STATE = trace.TraceState([("vendor", "x1")])


class Counting(ParentBased):
    """A subclass (it may decide otherwise): always asked."""

    calls = 0

    def should_sample(self, *args: Any, **kwargs: Any) -> SamplingResult:
        Counting.calls += 1
        return super().should_sample(*args, **kwargs)


SAMPLERS: list[Sampler] = [
    ParentBased(ALWAYS_ON),
    ParentBased(ALWAYS_OFF),
    ALWAYS_ON,
    ALWAYS_OFF,
    ParentBased(ALWAYS_ON, remote_parent_sampled=ALWAYS_OFF,
                local_parent_not_sampled=ALWAYS_ON),
    ParentBased(TraceIdRatioBased(0.5)),
    TraceIdRatioBased(0.5),
    Counting(ALWAYS_ON),
]

PARENTS: list[trace.SpanContext | None] = [None] + [
    trace.SpanContext(TRACE_ID, 0xB7AD6B7169203331, is_remote=remote,
                      trace_flags=trace.TraceFlags(flags), trace_state=STATE)
    for remote in (True, False) for flags in (trace.TraceFlags.SAMPLED,
                                              trace.TraceFlags.DEFAULT)]


def _spans(sampler: Sampler) -> Spans:
    spans = fast_spans(TracerProvider(sampler=sampler).get_tracer("test"))
    assert spans is not None
    return spans


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda s: s.get_description())
@pytest.mark.parametrize("parent", PARENTS, ids=lambda p: "root" if p is None else
                         f"{'remote' if p.is_remote else 'local'}-{p.trace_flags.sampled}")
def test_the_decision_the_attributes_and_the_trace_state_are_the_samplers(
        sampler: Sampler, parent: trace.SpanContext | None) -> None:
    spans = _spans(sampler)
    context = (trace.set_span_in_context(trace.NonRecordingSpan(parent))
               if parent is not None else otel_context.Context())
    attributes = {"duro.workflow_id": "wf", "duro.attempt": 2}
    for trace_id in (TRACE_ID, 0x1, (1 << 128) - 1):  # the ratio sampler looks at it
        expected = sampler.should_sample(context, trace_id, "RunStep:x",
                                         trace.SpanKind.INTERNAL, attributes, ())
        decision, given, ctx = spans._sample(context, parent, trace_id, 0x42, False,
                                             "RunStep:x", trace.SpanKind.INTERNAL,
                                             attributes, ())
        assert decision is expected.decision
        assert dict(given or {}) == dict(expected.attributes)
        # As the SDK's tracer makes it (None becomes the empty trace state).
        assert ctx.trace_state == trace.SpanContext(
            trace_id, 0x42, is_remote=False, trace_state=expected.trace_state).trace_state
        assert ctx.trace_flags.sampled == (expected.decision is Decision.RECORD_AND_SAMPLE)
        assert (ctx.trace_id, ctx.span_id, ctx.is_remote) == (trace_id, 0x42, False)


def test_only_the_stock_samplers_are_decided_without_asking() -> None:
    assert _spans(ParentBased(ALWAYS_ON)).static == (
        Decision.RECORD_AND_SAMPLE, Decision.RECORD_AND_SAMPLE, Decision.DROP,
        Decision.RECORD_AND_SAMPLE, Decision.DROP)
    assert _spans(ParentBased(TraceIdRatioBased(0.5))).static == (
        None, Decision.RECORD_AND_SAMPLE, Decision.DROP, Decision.RECORD_AND_SAMPLE,
        Decision.DROP)
    assert _spans(TraceIdRatioBased(0.5)).static is None
    Counting.calls = 0
    spans = _spans(Counting(ALWAYS_ON))
    assert spans.static is None
    spans.start("RunStep:x", otel_context.Context(), None)
    assert Counting.calls == 1
