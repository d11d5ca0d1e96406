"""``TracingInterceptor``: OpenTelemetry spans for what clients and workers do."""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, TypeVar

import orjson
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from duro._history import EventKind, SignalMeta
from duro.interceptors import (
    ClientInterceptor,
    EventsRecordedInput,
    QueryInput,
    SignalInput,
    StartInput,
    UpdateInput,
    WorkerInterceptor,
)
from duro.step import StepInfo
from duro.tracing._ids import NO_STATE as _NO_STATE
from duro.tracing._ids import (
    ForcedIds,
    _runs,
    inject,
    parent_context,
    remember,
    run_entry,
    run_span_id,
    run_trace_id,
)
from duro.tracing._light import UNSET as _UNSET
from duro.tracing._light import LightSpan, entered
from duro.tracing._spans import Sampled, context_of, fast_spans

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


_I = TypeVar("_I", StartInput, SignalInput, UpdateInput, QueryInput)
_O = TypeVar("_O")


def _copier(cls: type[Any]) -> tuple[Callable[[Any], tuple[Any, ...]], tuple[Any, ...], Any]:
    """How :func:`_with_headers` copies an input of ``cls``: a getter of all its slots,
    each slot's setter, and the ``headers`` slot's setter."""
    slots = tuple(f.name for f in dataclasses.fields(cls))
    setters = tuple(cls.__dict__[name].__set__ for name in slots)
    return operator.attrgetter(*slots), setters, cls.__dict__["headers"].__set__


_COPIERS: dict[type[Any], tuple[Callable[[Any], tuple[Any, ...]], tuple[Any, ...], Any]] = {
    cls: _copier(cls) for cls in (SignalInput, UpdateInput, QueryInput)}
"""duro's client inputs: frozen dataclasses with slots, no ``__post_init__``."""

_new = object.__new__
(_set_workflow, _set_args, _set_kwargs, _set_workflow_id, _set_signal, _set_update,
 _set_headers, _set_search_attributes) = (
    StartInput.__dict__[f.name].__set__ for f in dataclasses.fields(StartInput))


def _with_headers(input: _I, headers: dict[str, str]) -> _I:
    """``dataclasses.replace(input, headers=headers)``, at a third of its cost for
    duro's own inputs (each slot copied through its descriptor: it runs once per client
    call); anything else (a subclass an interceptor made) through ``replace``."""
    if type(input) is StartInput:
        return _start_with_headers(input, headers)
    copier = _COPIERS.get(type(input))
    if copier is None:
        return dataclasses.replace(input, headers=headers)
    values, setters, set_headers = copier
    out = _new(type(input))
    for put, value in zip(setters, values(input), strict=True):
        put(out, value)
    set_headers(out, headers)
    return out


def _start_with_headers(start: StartInput, headers: dict[str, str]) -> StartInput:
    """:func:`_with_headers` for a start (once per run), slot by slot: a third of the
    loop's cost."""
    made = _new(StartInput)
    _set_workflow(made, start.workflow)
    _set_args(made, start.args)
    _set_kwargs(made, start.kwargs)
    _set_workflow_id(made, start.workflow_id)
    _set_signal(made, start.signal)
    _set_update(made, start.update)
    _set_headers(made, headers)
    _set_search_attributes(made, start.search_attributes)
    return made


def _with_context(headers: Mapping[str, str] | None, span: Any) -> dict[str, str]:
    """``headers`` with ``span`` (the current one) written in as W3C ``traceparent``
    (and ``tracestate``): for duro's own recording spans as the W3C propagator writes
    them (the format is fixed: version 00, then the ids and flags in lowercase hex),
    for any other through the propagator."""
    out = {k: v for k, v in headers.items() if k not in ("traceparent", "tracestate")} \
        if headers else {}
    if type(span) is LightSpan:  # its context a tuple (fast_spans)
        # The span context's fields unpacked (its properties are a call each).
        trace_id, span_id, _, flags, state, _ = span.get_span_context()
        # %-formatting: 40% cheaper than an f-string's format specs here.
        out["traceparent"] = "00-%032x-%016x-%02x" % (trace_id, span_id, flags)  # noqa: UP031
        if state is not _NO_STATE and state:  # most carry none (no call to its __len__)
            out["tracestate"] = state.to_header()
    else:
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
      It covers the whole attempt (its ``execute_step`` interceptors, the step, what it
      streamed, its result encoded): a timed out attempt is an error
      (``StepTimeoutError``). Made by :meth:`attempt_started`: a subclass that returns
      None there for some steps traces only the others.
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
            provider.id_generator = ForcedIds(generator)  # before the tracer takes it
        self.tracer = provider.get_tracer("duro")
        # The SDK's pipeline without its generic span (most of the cost): _spans.py.
        self.spans = fast_spans(self.tracer)
        # Runs in a trace of their own: their span context as the sampler decided it.
        self._own: dict[str, tuple[trace.SpanContext, Sampled]] = {}

    # -- client calls ------------------------------------------------------------------

    def start(self, input: StartInput, next: Callable[[StartInput], Awaitable[Any]]
              ) -> Coroutine[Any, Any, Any]:
        return self._traced(
            f"StartWorkflow:{input.workflow}", SpanKind.PRODUCER,
            {"duro.workflow": input.workflow, "duro.workflow_id": input.workflow_id or ""},
            input, next)

    def signal(self, input: SignalInput, next: Callable[[SignalInput], Awaitable[None]]
               ) -> Coroutine[Any, Any, None]:
        return self._traced(
            f"SignalWorkflow:{input.name}", SpanKind.PRODUCER,
            {"duro.workflow_id": input.workflow_id, "duro.signal": input.name}, input, next)

    def update(self, input: UpdateInput, next: Callable[[UpdateInput], Awaitable[Any]]
               ) -> Coroutine[Any, Any, Any]:
        return self._traced(
            f"UpdateWorkflow:{input.name}", SpanKind.CLIENT,
            {"duro.workflow_id": input.workflow_id, "duro.update": input.name}, input, next)

    def query(self, input: QueryInput, next: Callable[[QueryInput], Awaitable[Any]]
              ) -> Coroutine[Any, Any, Any]:
        return self._traced(
            f"QueryWorkflow:{input.name}", SpanKind.CLIENT,
            {"duro.workflow_id": input.workflow_id, "duro.query": input.name}, input, next)

    async def _traced(self, name: str, kind: SpanKind, attributes: dict[str, Any],
                      input: _I, next: Callable[[_I], Awaitable[_O]]) -> _O:
        """A client call in its span (current meanwhile), its headers carrying the
        span's context (the hooks return this coroutine: no second one per call)."""
        # A span of the current context's, made current, and what ends it (no generator
        # or context manager around it).
        spans = self.spans
        made = spans.begin(name, kind, attributes) if spans is not None else None
        span, end = made if made is not None else self._generic_begin(name, kind, attributes)
        try:
            headers = _with_context(input.headers, span)
            result = await next(_with_headers(input, headers))
        except BaseException as error:
            end(error)
            raise
        end(None)
        return result

    # -- step attempts -------------------------------------------------------------------

    def attempt_started(self, info: StepInfo) -> Callable[[BaseException | None], None]:
        # The run's span context: from run_entry's cache, looked up here (a call saved
        # per attempt: the hot path).
        found = _runs.get(info.run_id)
        if found is None:
            found = run_entry(info.run_id, info.headers)
        # A run in a trace of its own: sampled as its sampler decides that trace.
        run = found[0] if found[1] is not None else \
            self._own_trace(info.run_id, found[0], info.workflow, info.workflow_id)[0]
        # Few attributes: each costs the SDK a check. The run's id is the parent's; a
        # retry is an attempt after the first.
        attributes: dict[str, Any] = {"duro.workflow_id": info.workflow_id,
                                      "duro.attempt": info.attempt, "duro.queue": info.queue}
        spans = self.spans
        # The hot path (a span per attempt). The span goes into the current context (the
        # attempt's: a run's context differs from it only by the run's span, which the
        # attempt's replaces).
        end = spans.attempt("RunStep:" + info.step, run, attributes) \
            if spans is not None else None
        return end if end is not None else self._generic_attempt(info, run, attributes)

    def _generic_attempt(self, info: StepInfo, run: trace.SpanContext,
                         attributes: dict[str, Any]) -> Callable[[BaseException | None], None]:
        """:meth:`attempt_started` through the OpenTelemetry API (a provider other than
        the SDK's, or a tracer it disabled), as ``start_as_current_span`` would do it."""
        span = self.tracer.start_span("RunStep:" + info.step, context=context_of(run),
                                      attributes=attributes)
        return entered(span)

    def _generic_begin(self, name: str, kind: SpanKind, attributes: dict[str, Any]
                       ) -> tuple[Any, Callable[[BaseException | None], None]]:
        """A client call's span through the OpenTelemetry API (a provider other than the
        SDK's, or a tracer it disabled), made current, and what ends it, called with what
        the call raised (as ``start_as_current_span``'s block would: an exception marks
        it failed)."""
        span = self.tracer.start_span(name, kind=kind, attributes=attributes)
        return span, entered(span)

    # -- what a worker commits -------------------------------------------------------------

    # Most writes are a step's outcome, whose attempt has its span already.
    recorded_kinds = _TRACED

    def _own_trace(self, run_id: str, run: trace.SpanContext, workflow: str,
                   workflow_id: str) -> tuple[trace.SpanContext, Sampled | None]:
        """A run in a trace of its own (no ``traceparent``), sampled as the provider's
        sampler decides on its span (:meth:`Spans.own_trace`): its span context and the
        sampler's answer, worked out once per run here (a sampler need not decide alike
        twice). Only on the SDK's path, its tracer enabled (another provider's sampler
        cannot be asked: the run's context stays sampled). Not kept for a step queued
        by a duro that did not name its workflow (``workflow`` empty): the run's end
        then asks with its name."""
        found = self._own.get(run_id)
        if found is None:
            spans = self.spans
            if spans is None or not spans.enabled():
                return run, None
            found = spans.own_trace(run, f"RunWorkflow:{workflow}", {
                "duro.workflow": workflow, "duro.workflow_id": workflow_id,
                "duro.run_id": run_id})
            if workflow:
                remember(self._own, run_id, found)
        return found

    def events_recorded(self, input: EventsRecordedInput) -> None:
        span_ctx, start = run_entry(input.run_id, input.headers)
        decided = None
        if start is None:
            span_ctx, decided = self._own_trace(input.run_id, span_ctx, input.workflow,
                                                 input.workflow_id)
        attributes = {"duro.workflow": input.workflow, "duro.workflow_id": input.workflow_id,
                      "duro.run_id": input.run_id}
        for ev in input.events:
            if ev.kind == K.TIMER_FIRED and ev.op is not None and ev.op in input.timers_set:
                self._past("Timer", None, span_ctx, {
                    **attributes, "duro.timer.due": input.timers_due.get(ev.op, ev.ts)},
                    _ns(input.timers_set[ev.op]), _ns(ev.ts))
            elif ev.kind == K.SIGNAL_RECEIVED:
                sender = parent_context(SignalMeta.decode(ev.meta).headers if ev.meta
                                        else None)
                self._past(f"Signal:{ev.name}", None, span_ctx,
                           {**attributes, "duro.signal": ev.name or ""},
                           _ns(ev.ts), _ns(ev.ts), kind=SpanKind.CONSUMER,
                           links=[Link(sender)] if sender is not None else [])
            elif ev.kind in _ENDED:
                self._run_span(input, span_ctx, start, ev.kind, ev.ts, ev.data, attributes,
                               decided)
                self._own.pop(input.run_id, None)  # its last span

    def _past(self, name: str, context: Any, parent: trace.SpanContext | None,
              attributes: dict[str, Any], start: int, end: int, *,
              kind: SpanKind = SpanKind.INTERNAL, links: list[Link] | None = None,
              status: Status = _UNSET, ids: trace.SpanContext | None = None,
              decided: Sampled | None = None) -> None:
        """A span that began and ended already, a child of ``parent``, the current span
        of ``context`` (None: made when asked for) (``ids``: its own trace and span ids,
        a run's; ``decided``: the sampler's answer, given already)."""
        spans = self.spans
        if spans is not None and spans.enabled():
            spans.record(name, context, parent,
                         trace_id=ids[0] if ids is not None else None,  # its trace_id
                         span_id=ids[1] if ids is not None else None, kind=kind,
                         attributes=attributes, links=links or (), start_time=start,
                         end_time=end, status=status, decided=decided)
            return
        if context is None:
            context = context_of(parent)
        token = ForcedIds.forced(ids.trace_id, ids.span_id) if ids is not None else None
        try:
            span = self.tracer.start_span(name, context=context, kind=kind,
                                          attributes=attributes, links=links,
                                          start_time=start)
        finally:
            if token is not None:
                ForcedIds.reset(token)
        if status is not _UNSET:
            span.set_status(status)
        span.end(end_time=end)

    def _run_span(self, input: EventsRecordedInput, ctx: trace.SpanContext,
                  parent: trace.SpanContext | None, kind: str, ended: float,
                  data: bytes | None, attributes: Mapping[str, Any],
                  decided: Sampled | None) -> None:
        """The run's logical span (``ctx``), child of its start's span (``parent``) or
        of its parent run's. A child whose headers carry no trace (its parent run's
        start was not traced) is in a trace of its own, as its parent is: its span is
        that trace's root, linked to its parent run's span. ``decided``: the sampler's
        answer on a run in a trace of its own (:meth:`_own_trace`)."""
        links: list[Link] = []
        if input.parent_run_id is not None:
            parent_span = run_span_id(input.parent_run_id)
            if parent is not None:  # in the trace its headers carry: its parent's too
                parent = trace.SpanContext(ctx.trace_id, parent_span, True, ctx.trace_flags,
                                           ctx.trace_state)  # the start's, as its steps
            else:
                links.append(Link(trace.SpanContext(run_trace_id(input.parent_run_id),
                                                    parent_span, True, ctx.trace_flags)))
        failed = kind in (K.RUN_FAILED, K.RUN_TIMED_OUT, K.RUN_TERMINATED)
        self._past(f"RunWorkflow:{input.workflow}", None, parent,
                   {**attributes, "duro.status": _ENDED[kind]},
                   _ns(input.started_at or ended), _ns(ended),
                   status=Status(StatusCode.ERROR, _message(data)) if failed else _UNSET,
                   ids=ctx, links=links, decided=decided)


def _message(data: bytes | None) -> str:
    """The error message of a run's end event (its ErrorInfo payload), if readable."""
    try:
        raw = orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        return ""
    return str(raw.get("message", "")) if isinstance(raw, dict) else ""
