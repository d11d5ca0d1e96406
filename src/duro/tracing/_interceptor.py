"""``TracingInterceptor``: OpenTelemetry spans for what clients and workers do."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from duro._history import EventKind, SignalMeta
from duro.interceptors import (
    ClientInterceptor,
    EventsRecordedInput,
    ExecuteStepInput,
    QueryInput,
    SignalInput,
    StartInput,
    UpdateInput,
    WorkerInterceptor,
)
from duro.tracing._ids import (
    ForcedIds,
    inject,
    parent_context,
    run_context,
    run_span_context,
    run_span_id,
)

__all__ = ["TracingInterceptor"]

K = EventKind
_NS = 1_000_000_000
_ENDED: dict[str, str] = {
    K.RUN_COMPLETED: "completed", K.RUN_FAILED: "failed", K.RUN_CANCELLED: "cancelled",
    K.RUN_TERMINATED: "terminated", K.RUN_TIMED_OUT: "timed_out",
    K.RUN_CONTINUED_AS_NEW: "continued_as_new"}

_TRACED = frozenset({K.TIMER_FIRED, K.SIGNAL_RECEIVED, *_ENDED})
"""The events that make spans of their own."""


def _ns(ts: float) -> int:
    return int(ts * _NS)


def _with_context(headers: Mapping[str, str] | None) -> dict[str, str]:
    """``headers`` with the current span written in as ``traceparent``."""
    out = {k: v for k, v in (headers or {}).items() if k not in ("traceparent", "tracestate")}
    inject(out)
    return out


class TracingInterceptor(ClientInterceptor, WorkerInterceptor):
    """OpenTelemetry traces of a client's calls and a worker's runs (extra
    ``duro[otel]``). Pass it as an interceptor to the clients and workers::

        tracing = duro.tracing.TracingInterceptor()          # the global provider
        engine = duro.Engine(url, interceptors=[tracing])

    - **Client calls** (start, signal, update, query): a span each; the span's context
      goes into the call's headers as W3C ``traceparent``, so the run (and a signal's
      delivery) continue the caller's trace.
    - **A run**: one logical span ``RunWorkflow:<name>``, from its start to its end,
      across suspensions and workers: its span id is derived from the run id, so every
      process names the same span; it is recorded by the worker that records the run's
      end (the spans of a run still going on point to a parent not yet exported). Its
      parent is the start's span (or, for a child, its parent run's span).
    - **A step attempt**: ``RunStep:<name>`` (attempt, queue, error), a child of the run's
      span, current while the step runs: the step's own instrumented calls nest in it.
    - **Timers and signals**: ``Timer`` (set → fired) and ``Signal:<name>`` (linked to
      the sender's span), children of the run's span.

    Replay-safe by construction: attempt spans come from attempts, the others from what
    a worker commits (``events_recorded``), and a replay runs no attempt and commits
    nothing.

    With the OpenTelemetry SDK's ``TracerProvider``, the interceptor wraps the provider's
    id generator (once) so that a run's span gets its derived ids; any other provider
    gets spans with its own ids (the run's span then does not match its children's
    parent).

    Args:
        tracer_provider: The provider to trace with (default: the global one).
    """

    def __init__(self, tracer_provider: Any = None) -> None:
        provider: Any = tracer_provider if tracer_provider is not None else \
            trace.get_tracer_provider()
        generator = getattr(provider, "id_generator", None)
        if generator is not None and not isinstance(generator, ForcedIds):
            provider.id_generator = ForcedIds(generator)
        self.tracer = provider.get_tracer("duro")

    # -- client calls ------------------------------------------------------------------

    async def start(self, input: StartInput,
                    next: Callable[[StartInput], Awaitable[Any]]) -> Any:
        with self.tracer.start_as_current_span(
                f"StartWorkflow:{input.workflow}", kind=SpanKind.PRODUCER,
                attributes={"duro.workflow": input.workflow,
                            "duro.workflow_id": input.workflow_id or ""}):
            return await next(dataclasses.replace(input,
                                                  headers=_with_context(input.headers)))

    async def signal(self, input: SignalInput,
                     next: Callable[[SignalInput], Awaitable[None]]) -> None:
        with self.tracer.start_as_current_span(
                f"SignalWorkflow:{input.name}", kind=SpanKind.PRODUCER,
                attributes={"duro.workflow_id": input.workflow_id, "duro.signal": input.name}):
            await next(dataclasses.replace(input, headers=_with_context(input.headers)))

    async def update(self, input: UpdateInput,
                     next: Callable[[UpdateInput], Awaitable[Any]]) -> Any:
        with self.tracer.start_as_current_span(
                f"UpdateWorkflow:{input.name}", kind=SpanKind.CLIENT,
                attributes={"duro.workflow_id": input.workflow_id, "duro.update": input.name}):
            return await next(dataclasses.replace(input, headers=_with_context(input.headers)))

    async def query(self, input: QueryInput,
                    next: Callable[[QueryInput], Awaitable[Any]]) -> Any:
        with self.tracer.start_as_current_span(
                f"QueryWorkflow:{input.name}", kind=SpanKind.CLIENT,
                attributes={"duro.workflow_id": input.workflow_id, "duro.query": input.name}):
            return await next(dataclasses.replace(input, headers=_with_context(input.headers)))

    # -- step attempts -------------------------------------------------------------------

    async def execute_step(self, input: ExecuteStepInput,
                           next: Callable[[ExecuteStepInput], Awaitable[Any]]) -> Any:
        info = input.info
        # Few attributes: each costs the SDK a check. The run's id is the parent's.
        with self.tracer.start_as_current_span(
                "RunStep:" + input.step, context=run_context(info.run_id, info.headers),
                attributes={"duro.workflow_id": info.workflow_id,
                            "duro.attempt": info.attempt}):
            return await next(input)

    # -- what a worker commits -------------------------------------------------------------

    def events_recorded(self, input: EventsRecordedInput) -> None:
        if not any(ev.kind in _TRACED for ev in input.events):
            return  # most writes: a step's outcome (its attempt has its span already)
        run = run_context(input.run_id, input.headers)
        attributes = {"duro.workflow": input.workflow, "duro.workflow_id": input.workflow_id,
                      "duro.run_id": input.run_id}
        for ev in input.events:
            if ev.kind == K.TIMER_FIRED and ev.op is not None and ev.op in input.timers_set:
                span = self.tracer.start_span("Timer", context=run, attributes={
                    **attributes, "duro.timer.due": input.timers_due.get(ev.op, ev.ts)},
                    start_time=_ns(input.timers_set[ev.op]))
                span.end(end_time=_ns(ev.ts))
            elif ev.kind == K.SIGNAL_RECEIVED:
                sender = parent_context(SignalMeta.decode(ev.meta).headers if ev.meta
                                        else None)
                span = self.tracer.start_span(
                    f"Signal:{ev.name}", context=run, kind=SpanKind.CONSUMER,
                    attributes={**attributes, "duro.signal": ev.name or ""},
                    links=[Link(sender)] if sender is not None else None,
                    start_time=_ns(ev.ts))
                span.end(end_time=_ns(ev.ts))
            elif ev.kind in _ENDED:
                self._run_span(input, ev.kind, ev.ts, ev.data, attributes)

    def _run_span(self, input: EventsRecordedInput, kind: str, ended: float,
                  data: bytes | None, attributes: Mapping[str, Any]) -> None:
        ctx = run_span_context(input.run_id, input.headers)
        parent: trace.SpanContext | None = parent_context(input.headers)
        if input.parent_run_id is not None:
            parent = trace.SpanContext(trace_id=ctx.trace_id,
                                       span_id=run_span_id(input.parent_run_id),
                                       is_remote=True, trace_flags=ctx.trace_flags)
        context = (trace.set_span_in_context(trace.NonRecordingSpan(parent))
                   if parent is not None else otel_context.Context())
        token = ForcedIds.forced(ctx.trace_id, ctx.span_id)
        try:
            span = self.tracer.start_span(
                f"RunWorkflow:{input.workflow}", context=context, kind=SpanKind.INTERNAL,
                attributes={**attributes, "duro.status": _ENDED[kind]},
                start_time=_ns(input.started_at or ended))
        finally:
            ForcedIds.reset(token)
        if kind in (K.RUN_FAILED, K.RUN_TIMED_OUT, K.RUN_TERMINATED):
            span.set_status(Status(StatusCode.ERROR, _message(data)))
        span.end(end_time=_ns(ended))


def _message(data: bytes | None) -> str:
    """The error message of a run's end event (its ErrorInfo payload), if readable."""
    try:
        raw = orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        return ""
    return str(raw.get("message", "")) if isinstance(raw, dict) else ""
