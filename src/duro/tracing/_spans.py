"""Spans made without the OpenTelemetry SDK's generic span machinery, for the SDK's own
pipeline (its sampler, id generator, resource and span processors).

Why: the SDK's ``Tracer.start_span`` + ``Span.end`` cost ~14 µs (19 µs made current),
against a step's ~90 µs of engine CPU: one span per step attempt alone took tracing to
~60% of the throughput without it. Most of that buys what duro's spans do not use (a
lock per span, bounded containers sized for arbitrary instrumentation, internal metrics,
an exception-recording context manager). :class:`Spans` asks the provider's sampler
exactly as the SDK does, hands each recording span to the span processors' ``on_start``
and a :class:`ReadableSpan` to their ``on_end``, and keeps what the step's own code adds
to its span (attributes, events, status, links) within the provider's limits: exporters
see what they would see from the SDK. Spans whose times are known after the fact (a
run's, a timer's, a signal's) go straight to ``on_end``.

Used only with the SDK's ``Tracer`` (anything else, and an SDK tracer a configurator has
disabled, takes the generic path: see :func:`fast_spans`)."""

from __future__ import annotations

import time
import traceback
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.util import types

__all__ = ["Current", "LightSpan", "Spans", "fast_spans"]

_SAMPLED = trace.TraceFlags(trace.TraceFlags.SAMPLED)
_NOT_SAMPLED = trace.TraceFlags(trace.TraceFlags.DEFAULT)
_UNSET = Status(StatusCode.UNSET)


def fast_spans(tracer: Any) -> Spans | None:
    """:class:`Spans` over an OpenTelemetry SDK tracer; None for any other tracer (an
    API-only or vendor provider's), which duro then uses through its generic API."""
    if not isinstance(tracer, SdkTracer):
        return None
    return Spans(tracer)


class Spans:
    """Makes spans for one SDK tracer (its provider's sampler, ids, processors)."""

    def __init__(self, tracer: SdkTracer) -> None:
        self.tracer = tracer
        # The provider's own generator (duro's ForcedIds wrapper serves the generic
        # path: here a run's span is given its ids directly).
        self.ids = getattr(tracer.id_generator, "wrapped", tracer.id_generator)
        self.scope = InstrumentationScope(tracer.instrumentation_info.name,
                                          tracer.instrumentation_info.version,
                                          tracer.instrumentation_info.schema_url)
        limits = getattr(tracer, "_span_limits", None)
        self.limits: SpanLimits = limits if isinstance(limits, SpanLimits) else SpanLimits()

    def enabled(self) -> bool:
        """False when the SDK is told to make no spans for this tracer (a tracer
        configurator): the generic path then returns the SDK's non-recording spans."""
        check = getattr(self.tracer, "_is_enabled", None)
        return bool(check()) if check is not None else True

    def start(self, name: str, context: Any, parent: trace.SpanContext | None, *,
              kind: SpanKind = SpanKind.INTERNAL,
              attributes: Mapping[str, types.AttributeValue] | None = None,
              links: Sequence[Link] = (), start_time: int | None = None
              ) -> LightSpan | trace.NonRecordingSpan:
        """A span started now (or at ``start_time``), child of ``parent`` (the span in
        ``context``; None: a root span, of a new trace), sampled by the provider's
        sampler: a :class:`LightSpan` when recorded, else a non-recording span that still
        carries its context to children."""
        tracer = self.tracer
        ids = self.ids
        if parent is None or not parent.is_valid:
            parent = None
            trace_id = ids.generate_trace_id()
            random_id = ids.is_trace_id_random()
        else:
            trace_id = parent.trace_id
            random_id = parent.trace_flags.random_trace_id
        result = tracer.sampler.should_sample(context, trace_id, name, kind, attributes,
                                              links)
        flags = _SAMPLED if result.decision is Decision.RECORD_AND_SAMPLE else _NOT_SAMPLED
        if random_id:
            flags = trace.TraceFlags(flags | trace.TraceFlags.RANDOM_TRACE_ID)
        ctx = trace.SpanContext(trace_id, ids.generate_span_id(), is_remote=False,
                                trace_flags=flags, trace_state=result.trace_state)
        if result.decision is Decision.DROP:
            return trace.NonRecordingSpan(ctx)
        span = LightSpan(self, name, ctx, parent, kind,
                         dict(result.attributes) if result.attributes else {},
                         list(links) if links else [], start_time if start_time is not None
                         else time.time_ns())
        tracer.span_processor.on_start(span, parent_context=context)  # type: ignore[arg-type]
        return span

    def record(self, name: str, context: Any, parent: trace.SpanContext | None, *,
               span_id: int | None = None, trace_id: int | None = None,
               kind: SpanKind = SpanKind.INTERNAL,
               attributes: Mapping[str, types.AttributeValue] | None = None,
               links: Sequence[Link] = (), start_time: int, end_time: int,
               status: Status = _UNSET) -> None:
        """A span whose times are known already (begun and ended in the past), handed
        to the processors' ``on_end`` if sampled. ``span_id``/``trace_id`` name it
        (a run's logical span: ids derived from its run id) instead of the provider's
        id generator."""
        tracer = self.tracer
        if trace_id is None:
            trace_id = (parent.trace_id if parent is not None and parent.is_valid
                        else self.ids.generate_trace_id())
        result = tracer.sampler.should_sample(context, trace_id, name, kind, attributes,
                                              links)
        if result.decision is Decision.DROP:
            return
        flags = _SAMPLED if result.decision is Decision.RECORD_AND_SAMPLE else _NOT_SAMPLED
        ctx = trace.SpanContext(
            trace_id, span_id if span_id is not None else self.ids.generate_span_id(),
            is_remote=False, trace_flags=flags, trace_state=result.trace_state)
        merged = {**(attributes or {}), **(result.attributes or {})}
        tracer.span_processor.on_end(ReadableSpan(
            name=name, context=ctx, parent=parent if parent is None or parent.is_valid
            else None, resource=tracer.resource, attributes=merged, links=tuple(links),
            kind=kind, status=status, start_time=start_time, end_time=end_time,
            instrumentation_scope=self.scope))


class LightSpan(trace.Span):
    """A recording span of :class:`Spans`: what the SDK's span records, without its lock
    (a span is used on the one event loop that runs the step, or by the step's one
    thread) and with plain containers bounded by the provider's limits when written."""

    __slots__ = ("_attributes", "_ctx", "_end", "_events", "_kind", "_links", "_name",
                 "_owner", "_parent", "_start", "_status")

    def __init__(self, owner: Spans, name: str, ctx: trace.SpanContext,
                 parent: trace.SpanContext | None, kind: SpanKind,
                 attributes: dict[str, Any], links: list[Link], start: int) -> None:
        self._owner = owner
        self._name = name
        self._ctx = ctx
        self._parent = parent
        self._kind = kind
        self._attributes = attributes
        self._links = links
        self._events: list[Event] | None = None  # most spans get none: made when one comes
        self._status = _UNSET
        self._start = start
        self._end: int | None = None

    # -- what instrumentation reads ------------------------------------------------------

    def get_span_context(self) -> trace.SpanContext:
        return self._ctx

    def is_recording(self) -> bool:
        return self._end is None

    @property
    def name(self) -> str:
        """The span's name (as the SDK's span exposes it)."""
        return self._name

    @property
    def attributes(self) -> Mapping[str, Any]:
        """The span's attributes so far."""
        return dict(self._attributes)

    # -- what the step's code may add ----------------------------------------------------

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        if self._end is not None or not key:
            return
        limits = self._owner.limits
        if key not in self._attributes and limits.max_span_attributes is not None \
                and len(self._attributes) >= limits.max_span_attributes:
            return
        cap = limits.max_span_attribute_length
        if cap is not None and isinstance(value, str):
            value = value[:cap]
        self._attributes[key] = value

    def add_event(self, name: str, attributes: types.Attributes = None,
                  timestamp: int | None = None) -> None:
        limit = self._owner.limits.max_events
        if self._events is None:
            self._events = []
        if self._end is not None or (limit is not None and len(self._events) >= limit):
            return
        self._events.append(Event(name, attributes, timestamp))

    def add_link(self, context: trace.SpanContext, attributes: types.Attributes = None
                 ) -> None:
        limit = self._owner.limits.max_links
        if self._end is not None or not context.is_valid or \
                (limit is not None and len(self._links) >= limit):
            return
        self._links.append(Link(context, attributes))

    def update_name(self, name: str) -> None:
        if self._end is None:
            self._name = name

    def set_status(self, status: Status | StatusCode,
                   description: str | None = None) -> None:
        if self._end is not None or self._status.status_code is StatusCode.OK:
            return  # as the SDK: OK is final
        if isinstance(status, StatusCode):
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self._status = status

    def record_exception(self, exception: BaseException, attributes: types.Attributes = None,
                         timestamp: int | None = None, escaped: bool = False) -> None:
        kind = type(exception)
        module = kind.__module__
        recorded: dict[str, Any] = {
            "exception.type": f"{module}.{kind.__qualname__}"
            if module and module != "builtins" else kind.__qualname__,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped)}
        if attributes:
            recorded.update(attributes)
        self.add_event("exception", recorded, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end is not None:
            return
        self._end = end_time if end_time is not None else time.time_ns()
        owner = self._owner
        owner.tracer.span_processor.on_end(ReadableSpan(
            name=self._name, context=self._ctx, parent=self._parent,
            resource=owner.tracer.resource, attributes=self._attributes,
            events=tuple(self._events) if self._events else (),
            links=tuple(self._links) if self._links else (), kind=self._kind,
            status=self._status, start_time=self._start, end_time=self._end,
            instrumentation_scope=owner.scope))

    def failed(self, error: Exception) -> None:
        """Mark the span failed by ``error``, raised by the code it covers, as the SDK's
        ``use_span`` does: the exception recorded as an event, the status an error."""
        if self._end is None:
            self.record_exception(error)
            self.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


class Current:
    """``with Current(span, context):`` the span is current (in ``context``) within the
    block and ended after it; an exception leaving the block marks it failed (as the
    SDK's ``use_span``). A class, not a generator: it wraps every step attempt."""

    __slots__ = ("_context", "_span", "_token")

    def __init__(self, span: LightSpan | trace.NonRecordingSpan, context: Any) -> None:
        self._span = span
        self._context = context
        self._token: Any = None

    def __enter__(self) -> None:
        self._token = otel_context.attach(trace.set_span_in_context(self._span,
                                                                    self._context))

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 tb: TracebackType | None) -> None:
        span = self._span
        if isinstance(error, Exception) and isinstance(span, LightSpan):
            span.failed(error)
        otel_context.detach(self._token)
        span.end()
