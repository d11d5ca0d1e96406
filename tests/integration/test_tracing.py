"""Tracing (issue 18, item 1): with the OpenTelemetry SDK's in-memory exporter, a run with
a retried step, a timer, a signal and a child yields one trace whose spans nest as
expected; a worker taking the run over (a replay) adds no duplicate span."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import duro
from tests.conftest import run, wait_for_event

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from duro.tracing import TracingInterceptor, run_span_context
from duro.tracing._ids import run_trace_id

APPS = Path(__file__).parent.parent / "acceptance" / "apps"
if str(APPS) not in sys.path:
    sys.path.insert(0, str(APPS))

import metrics_app  # noqa: E402


class _Wrapped:
    """Not the SDK's tracer (a vendor's, say): duro uses it through the generic API."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.tracer, name)


class _OtherProvider(TracerProvider):
    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        return _Wrapped(super().get_tracer(*args, **kwargs))


def _tracing(generic: bool = False) -> tuple[TracingInterceptor, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = _OtherProvider() if generic else TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing = TracingInterceptor(provider)
    assert (tracing.spans is None) is generic
    return tracing, exporter


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


@pytest.mark.parametrize("path", ["duro's spans", "generic"])
def test_one_trace_whose_spans_nest(any_db_url: str, path: str) -> None:
    """The same trace from duro's own spans (tracing/_spans.py, for the SDK's tracer)
    and from the generic API path (any other tracer)."""
    metrics_app.TRIES.clear()
    tracing, exporter = _tracing(generic=path == "generic")

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
    assert {s.attributes["duro.queue"] for s in flaky} == {"default"}  # type: ignore[index]
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


# -- duro's own spans (tracing/_spans.py) behave as the SDK's would --------------------


class _Untraced(TracingInterceptor):
    """Traces runs, not client calls: a start makes no span and writes no header."""

    async def start(self, input: Any, next: Any) -> Any:
        return await next(input)


def _engine_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'spans.db'}"


def test_a_steps_code_writes_to_its_span_as_to_an_sdk_span(tmp_path: Path) -> None:
    """What a step adds to the current span (attributes, an event, a status, a nested
    span) reaches the exporter, within the provider's span limits; a step that raises
    leaves an error status and the exception event, as the SDK's use_span does."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import SpanLimits

    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(
        max_span_attributes=4, max_span_attribute_length=5, max_event_attributes=1,
        max_attribute_length=5))
    started: list[tuple[str, Any]] = []

    class Reader(SpanProcessor):
        """Reads what processors read in on_start (as vendors' processors do)."""

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            started.append((span.name, span.parent, span.context, span.kind,
                            span.start_time, span.resource, span.instrumentation_scope,
                            dict(span.attributes), span.events, span.links, span.status))
            span.set_attribute("added.on_start", True)

    provider.add_span_processor(Reader())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    nested = provider.get_tracer("user")

    def write(span: Any) -> None:
        """What a step's code writes to its span (done again below on an SDK span)."""
        span.set_attribute("user.key", "abcdefgh")        # cut to 5 characters
        span.set_attributes({"user.a": 1, "user.b": 2})  # 6 attributes: the oldest go
        span.set_attribute("user.bad", object())
        span.add_event("halfway", {"n": "abcdefgh", "m": 2})  # one attribute: the newest

    @duro.step(name="spans.annotated")
    async def annotated() -> str:
        span = trace.get_current_span()
        assert span.is_recording()
        write(span)
        with nested.start_as_current_span("inner"):
            pass
        return "ok"

    @duro.step(name="spans.broken", retry=duro.RetryPolicy(max_attempts=1))
    async def broken() -> None:
        raise ValueError("no good")

    @duro.workflow(name="spans.flow")
    async def flow() -> str:
        out = await annotated()
        with contextlib.suppress(duro.StepFailedError):
            await broken()
        return out

    async def main() -> list[ReadableSpan]:
        async with duro.Engine(_engine_url(tmp_path), poll_interval=0.02,
                               interceptors=[TracingInterceptor(provider)]) as engine:
            assert await (await engine.start(flow)).result(timeout=30) == "ok"
            return await _spans_until(exporter, "RunWorkflow:spans.flow", 1)

    named = _by_name(run(main()))
    (step,) = named["RunStep:spans.annotated"]
    # The same writes on the SDK's own span, under the same limits and processors.
    (at_start,) = [attributes for name, _, _, _, _, _, _, attributes, *_ in started
                   if name == "RunStep:spans.annotated"]
    reference = provider.get_tracer("duro").start_span("reference", attributes=at_start)
    write(reference)
    reference.end()
    (sdk,) = [s for s in exporter.get_finished_spans() if s.name == "reference"]
    assert dict(step.attributes or {}) == dict(sdk.attributes or {})
    assert step.dropped_attributes == sdk.dropped_attributes > 0
    assert [(e.name, dict(e.attributes or {})) for e in step.events] == [
        (e.name, dict(e.attributes or {})) for e in sdk.events] == [
        ("halfway", {"m": 2})]
    assert started and all(name and context.is_valid and start and resource is
                           provider.resource and scope.name == "duro"
                           for name, _, context, _, start, resource, scope, *_ in started
                           if name != "inner")
    assert any(name == "RunStep:spans.annotated" and parent is not None
               for name, parent, *_ in started)
    (inner,) = named["inner"]
    assert _parent(inner) == step.context.span_id
    assert inner.context.trace_id == step.context.trace_id
    assert step.resource is provider.resource
    assert step.instrumentation_scope is not None
    assert step.instrumentation_scope.name == "duro"
    (bad,) = named["RunStep:spans.broken"]
    assert bad.status.status_code is StatusCode.ERROR
    assert bad.status.description == "ValueError: no good"
    (event,) = bad.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert dict(event.attributes) == {"exception.escaped": "False"}  # the limits: the last
    # The spans made after the fact (the run's) went through on_start as well.
    assert any(name == "RunWorkflow:spans.flow" for name, *_ in started)
    assert step.end_time is not None and step.start_time is not None
    assert step.end_time >= step.start_time


@pytest.mark.parametrize("sampler", ["always-off", "parent-based-off"])
def test_the_providers_sampler_decides(tmp_path: Path, sampler: str) -> None:
    """Spans the sampler drops are not exported, yet the trace context still reaches
    the step's code (its nested spans name a valid parent, not sampled). Parent-based
    (the SDK's default shape): the start's root span dropped, the run and its steps
    follow it (they are the start's children, even across processes)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF if sampler == "always-off"
                              else ParentBased(ALWAYS_OFF))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    seen: list[trace.SpanContext] = []

    @duro.step(name="spans.sampled")
    async def sampled() -> int:
        seen.append(trace.get_current_span().get_span_context())
        return 1

    @duro.workflow(name="spans.sampled_flow")
    async def flow() -> int:
        return await sampled()

    async def main() -> None:
        async with duro.Engine(_engine_url(tmp_path), poll_interval=0.02,
                               interceptors=[TracingInterceptor(provider)]) as engine:
            assert await (await engine.start(flow)).result(timeout=30) == 1

    run(main())
    assert exporter.get_finished_spans() == ()
    (ctx,) = seen
    assert ctx.is_valid and not ctx.trace_flags.sampled


def test_a_provider_that_is_not_the_sdks_is_used_through_the_api(tmp_path: Path) -> None:
    """Any other provider (here the API's no-op one) gets the generic path: runs go
    on, nothing breaks."""
    from opentelemetry import trace

    tracing = TracingInterceptor(trace.NoOpTracerProvider())
    assert tracing.spans is None

    @duro.step(name="spans.plain")
    async def plain() -> int:
        return 2

    @duro.workflow(name="spans.plain_flow")
    async def flow() -> int:
        return await plain()

    async def main() -> None:
        async with duro.Engine(_engine_url(tmp_path), poll_interval=0.02,
                               interceptors=[tracing]) as engine:
            assert await (await engine.start(flow)).result(timeout=30) == 2

    run(main())


@pytest.mark.parametrize("generic", [False, True])
def test_a_step_span_covers_the_attempt_and_a_subclass_may_choose_its_steps(
        tmp_path: Path, generic: bool) -> None:
    """A step attempt's span covers the whole attempt: a timed out attempt ends with an
    error status and its ``StepTimeoutError`` (on the SDK path and the generic one). Step
    spans come from ``attempt_started``: a subclass that returns None for some steps makes
    no span for them (and the run, its other steps and its end are traced as before)."""
    exporter = InMemorySpanExporter()
    provider = _OtherProvider() if generic else TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    slow = {"first": True}

    class SomeSteps(TracingInterceptor):
        def attempt_started(self, info: duro.StepInfo) -> Any:
            return None if info.step == "spans.untraced" else super().attempt_started(info)

    @duro.step(name="spans.slow", timeout=0.2,
               retry=duro.RetryPolicy(max_attempts=2, initial_interval=0.01, jitter=0))
    async def slow_step() -> str:
        if slow["first"]:
            slow["first"] = False
            await asyncio.sleep(30)
        return "ok"

    @duro.step(name="spans.untraced")
    async def untraced() -> str:
        return "quiet"

    @duro.workflow(name="spans.covered")
    async def flow() -> list[str]:
        return [await slow_step(), await untraced()]

    async def main() -> list[ReadableSpan]:
        async with duro.Engine(f"sqlite:///{tmp_path}/covered.db", poll_interval=0.02,
                               interceptors=[SomeSteps(provider)]) as engine:
            handle = await engine.start(flow, id="spans-covered")
            assert await handle.result(timeout=30) == ["ok", "quiet"]
            return await _spans_until(exporter, "RunWorkflow:spans.covered", 1)

    spans = _by_name(run(main()))
    assert "RunStep:spans.untraced" not in spans
    timed_out, done = sorted(spans["RunStep:spans.slow"],
                             key=lambda s: s.attributes["duro.attempt"])  # type: ignore[index]
    assert timed_out.status.status_code is StatusCode.ERROR
    assert "StepTimeoutError" in (timed_out.status.description or "")
    assert [e.name for e in timed_out.events] == ["exception"]
    assert done.status.status_code is StatusCode.UNSET and not done.events
    run_span = spans["RunWorkflow:spans.covered"][0]
    assert _parent(timed_out) == _parent(done) == run_span.context.span_id


@duro.step(name="spans.on_gpu", queue="spans-gpu")
async def on_gpu() -> str:
    return duro.step_info().queue


@duro.step(name="spans.here")
async def here() -> str:
    return duro.step_info().queue


@duro.workflow(name="spans.queued", queue="spans-batch")
async def queued() -> list[str]:
    return [await here(), await on_gpu()]


@pytest.mark.parametrize("generic", [False, True])
def test_a_step_span_names_the_queue_its_attempt_ran_from(tmp_path: Path,
                                                          generic: bool) -> None:
    """A step of a step queue ran from that queue; any other step from its run's (the
    run's worker ran it). ``duro.step_info().queue`` says the same."""
    tracing, exporter = _tracing(generic)

    async def main() -> list[ReadableSpan]:
        async with duro.Engine(f"sqlite:///{tmp_path}/queues.db", poll_interval=0.02,
                               queues=["spans-batch", "spans-gpu"],
                               interceptors=[tracing]) as engine:
            handle = await engine.start(queued, id="spans-queued")
            assert await handle.result(timeout=30) == ["spans-batch", "spans-gpu"]
            return await _spans_until(exporter, "RunWorkflow:spans.queued", 1)

    spans = _by_name(run(main()))
    (local,) = spans["RunStep:spans.here"]
    (remote,) = spans["RunStep:spans.on_gpu"]
    assert local.attributes is not None and remote.attributes is not None
    assert local.attributes["duro.queue"] == "spans-batch"
    assert remote.attributes["duro.queue"] == "spans-gpu"
    assert local.attributes["duro.attempt"] == remote.attributes["duro.attempt"] == 1


@pytest.mark.parametrize("generic", [False, True])
def test_a_subclass_awaiting_the_start_hook_adds_its_headers_under_the_span(
        tmp_path: Path, generic: bool) -> None:
    """``TracingInterceptor.start`` returns the traced call for the caller to await: a
    subclass's ``async def start`` that awaits ``super().start`` with headers of its own
    gets them carried beside the ``traceparent``, and a failed start's span is an
    error."""
    exporter = InMemorySpanExporter()
    provider = _OtherProvider() if generic else TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    class Tenant(TracingInterceptor):
        async def start(self, input: Any, next: Any) -> Any:
            headers = {**(input.headers or {}), "tenant": "acme"}
            return await super().start(dataclasses.replace(input, headers=headers), next)

    @duro.workflow(name="spans.tenant")
    async def flow() -> dict[str, str]:
        return dict(duro.info().headers)

    async def main() -> dict[str, str]:
        async with duro.Engine(f"sqlite:///{tmp_path}/tenant.db", poll_interval=0.02,
                               interceptors=[Tenant(provider)]) as engine:
            headers = await (await engine.start(flow, id="spans-tenant")).result(timeout=30)
            with pytest.raises(duro.InvalidArgumentError):
                await engine.start(flow, id="x" * 10_000)  # refused: its span fails
            return headers

    headers = run(main())
    assert headers["tenant"] == "acme" and headers["traceparent"].startswith("00-")
    starts = [s for s in exporter.get_finished_spans()
              if s.name == "StartWorkflow:spans.tenant"]
    assert len(starts) == 2
    ok, refused = starts
    assert f"{ok.context.span_id:016x}" in headers["traceparent"]
    assert ok.status.status_code is StatusCode.UNSET
    assert refused.status.status_code is StatusCode.ERROR
    assert "InvalidArgumentError" in (refused.status.description or "")


def test_a_child_of_an_untraced_start_is_the_root_of_its_own_trace(tmp_path: Path) -> None:
    """A parent run whose start nobody traced is a trace of its own (its id derived from
    its run id); its child, carrying the parent's headers (no ``traceparent``), is one too:
    its span is that trace's root, linked to the parent run's span, and its step spans
    are its children there (it used to name the parent run's span as its parent, in a
    trace that span is not in)."""
    from opentelemetry import trace

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    @duro.step(name="spans.kid_step")
    async def kid_step() -> int:
        return 2

    @duro.workflow(name="spans.kid")
    async def kid() -> int:
        return await kid_step()

    @duro.workflow(name="spans.parent")
    async def parent() -> int:
        return await duro.execute_child(kid, id="untraced-kid")

    async def main() -> list[ReadableSpan]:
        async with duro.Engine(_engine_url(tmp_path), poll_interval=0.02,
                               interceptors=[_Untraced(provider)]) as engine:
            handle = await engine.start(parent, id="untraced-parent")
            assert await handle.result(timeout=30) == 2
            await _spans_until(exporter, "RunWorkflow:spans.parent", 1)
            return await _spans_until(exporter, "RunWorkflow:spans.kid", 1)

    spans = {s.name: s for s in run(main())}
    parent_span, kid_span = spans["RunWorkflow:spans.parent"], spans["RunWorkflow:spans.kid"]
    step = spans["RunStep:spans.kid_step"]
    parent_ctx, kid_ctx = parent_span.get_span_context(), kid_span.get_span_context()
    assert parent_ctx is not None and kid_ctx is not None and step.parent is not None
    assert parent_span.parent is None and kid_span.parent is None  # each its trace's root
    assert kid_ctx.trace_id != parent_ctx.trace_id
    assert [link.context for link in kid_span.links] == [trace.SpanContext(
        parent_ctx.trace_id, parent_ctx.span_id, True, parent_ctx.trace_flags)]
    assert (step.parent.trace_id, step.parent.span_id) == (kid_ctx.trace_id, kid_ctx.span_id)


@duro.step(name="spans.own_local")
async def own_local() -> str:
    return duro.step_info().workflow


@duro.step(name="spans.own_queued", queue="spans-own-queue")
async def own_queued() -> str:
    return duro.step_info().workflow


@duro.workflow(name="spans.own")
async def own() -> list[str]:
    first = await own_local()
    await duro.sleep(0.01)
    return [first, await own_queued()]


def test_a_run_in_a_trace_of_its_own_is_sampled_as_its_sampler_decides(
        tmp_path: Path) -> None:
    """A run whose start nobody traced is the root of a trace of its own: the provider's
    sampler decides on it once (asked with the run's span's name and attributes), and its
    span, its steps' (local and queued) and its timer's follow that decision: all of a
    run's spans or none. They used to be recorded whatever the sampler said of the run
    (a ratio sampler then dropped runs' spans and kept their steps')."""
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace.sampling import (
        Decision,
        ParentBased,
        Sampler,
        SamplingResult,
    )

    asked: list[tuple[str, dict[str, Any]]] = []

    class KeepSome(Sampler):
        """Keeps the runs whose workflow id says so (deterministic, unlike a ratio)."""

        def should_sample(self, parent_context: Context | None, trace_id: int, name: str,
                          kind: Any = None, attributes: Any = None, links: Any = None,
                          trace_state: Any = None) -> SamplingResult:
            asked.append((name, dict(attributes or {})))
            keep = str((attributes or {}).get("duro.workflow_id", "")).startswith("keep")
            return SamplingResult(Decision.RECORD_AND_SAMPLE if keep else Decision.DROP,
                                  attributes)

        def get_description(self) -> str:
            return "KeepSome"

    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(KeepSome()))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    ids = [f"{'keep' if i % 2 else 'drop'}-{i}" for i in range(6)]

    async def main() -> dict[str, str]:
        async with duro.Engine(f"sqlite:///{tmp_path}/own.db", poll_interval=0.02,
                               queues=["default", "spans-own-queue"],
                               interceptors=[_Untraced(provider)]) as engine:
            handles = [await engine.start(own, id=workflow_id) for workflow_id in ids]
            for handle in handles:
                assert await handle.result(timeout=30) == ["spans.own", "spans.own"]
            await _spans_until(exporter, "RunWorkflow:spans.own", 3)
            return {h.workflow_id: h.run_id for h in handles}

    runs = run(main())
    by_trace: dict[int, list[str]] = {}
    for span in exporter.get_finished_spans():
        assert span.context is not None
        by_trace.setdefault(span.context.trace_id, []).append(span.name)
    assert len(by_trace) == 3
    for workflow_id, run_id in runs.items():
        names = sorted(by_trace.get(run_trace_id(run_id), []))
        assert names == (["RunStep:spans.own_local", "RunStep:spans.own_queued",
                          "RunWorkflow:spans.own", "Timer"]
                         if workflow_id.startswith("keep") else []), workflow_id
    # Asked once a run, about its span, whatever the process works out again.
    assert sorted(a["duro.run_id"] for _, a in asked) == sorted(runs.values())
    assert {name for name, _ in asked} == {"RunWorkflow:spans.own"}
    assert all(a["duro.workflow"] == "spans.own" for _, a in asked)
