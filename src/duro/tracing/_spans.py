"""Spans made without the OpenTelemetry SDK's generic span machinery, for the SDK's own
pipeline (its sampler, id generator, resource and span processors).

Why: the SDK's ``Tracer.start_span`` + ``Span.end`` cost ~14 µs (19 µs made current),
against a step's ~90 µs of engine CPU: one span per step attempt alone took tracing to
~60% of the throughput without it. Most of that buys what duro's spans do not use (a
lock per span, bounded containers sized for arbitrary instrumentation, internal metrics,
an exception-recording context manager). :class:`Spans` asks the provider's sampler
exactly as the SDK does (the SDK's stock samplers, parent-based over always-on/off, it
decides as they decide, from the parent's flags, without their call per span), hands
each recording span to the span processors' ``on_start`` and a :class:`ReadableSpan` to
their ``on_end``, and keeps what the step's own code adds
to its span (attributes, events, status, links) within the provider's limits: exporters
see what they would see from the SDK. Spans whose times are known after the fact (a
run's, a timer's, a signal's) go straight to ``on_end``.

Used only with the SDK's ``Tracer`` (anything else, and an SDK tracer a configurator has
disabled, takes the generic path: see :func:`fast_spans`)."""

from __future__ import annotations

import copy
import dis
import random
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar, Token
from types import FunctionType, MappingProxyType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import (
    Event,
    ReadableSpan,
    SpanLimits,
    SynchronousMultiSpanProcessor,
)
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, StaticSampler
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.util import types

from duro.tracing._ids import ForcedIds

__all__ = ["LightSpan", "Spans", "close", "context_of", "enter", "entered", "fast_spans",
           "leave"]

_Pipeline = tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]
_SAMPLED = trace.TraceFlags(trace.TraceFlags.SAMPLED)
_NOT_SAMPLED = trace.TraceFlags(trace.TraceFlags.DEFAULT)
_SAMPLED_RANDOM = trace.TraceFlags(trace.TraceFlags.SAMPLED | trace.TraceFlags.RANDOM_TRACE_ID)
_NOT_SAMPLED_RANDOM = trace.TraceFlags(trace.TraceFlags.RANDOM_TRACE_ID)
_DROP = Decision.DROP
_RECORD_AND_SAMPLE = Decision.RECORD_AND_SAMPLE
_UNSET = Status(StatusCode.UNSET)
_INTERNAL = SpanKind.INTERNAL
_NO_STATE = trace.DEFAULT_TRACE_STATE
_SPAN_IDS = 1 << 64
_TRACE_IDS = 1 << 128
_new_tuple = tuple.__new__


def _tuple_layout() -> bool:
    """Whether a ``SpanContext`` is the tuple ``(trace_id, span_id, is_remote,
    trace_flags, trace_state, is_valid)`` (as in every OpenTelemetry API so far): then a
    step attempt's span context is made as that tuple directly, without the checks of
    ``SpanContext.__new__`` (~0.25 µs, the most of any part of a span duro makes) on ids
    known to be valid (the run's trace id; a generated span id, found invalid where the
    constructor would find it so)."""
    made = tuple.__new__(trace.SpanContext, (3, 4, False, _SAMPLED, _NO_STATE, True))
    real = trace.SpanContext(3, 4, False, _SAMPLED)
    return made == real and (made.trace_id, made.span_id, made.is_remote, made.trace_flags,
                             made.trace_state, made.is_valid) == \
        (3, 4, False, _SAMPLED, _NO_STATE, True)


_TUPLE_LAYOUT = _tuple_layout()


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
        generator = tracer.id_generator
        self.ids = generator.wrapped if isinstance(generator, ForcedIds) else generator
        self.scope = InstrumentationScope(tracer.instrumentation_info.name,
                                          tracer.instrumentation_info.version,
                                          tracer.instrumentation_info.schema_url)
        limits = getattr(tracer, "_span_limits", None)
        self.limits: SpanLimits = limits if isinstance(limits, SpanLimits) else SpanLimits()
        self.static = _static_decisions(tracer.sampler)
        # Under a run's span (a remote, sampled parent): a step attempt's span's decision.
        self._under_run = self.static[1] if self.static is not None else None
        # How many attributes a span may keep in a plain dict: none when values are
        # cut to a length (the SDK's container does it), else up to the count limit.
        self._plain_attributes = 0 if self.limits.max_span_attribute_length is not None \
            else self.limits.max_span_attributes if self.limits.max_span_attributes \
            is not None else sys.maxsize
        self._members: Any = None
        self._is_enabled = getattr(tracer, "_is_enabled", None)  # an SDK's since 1.3x
        # Where the SDK keeps whether the tracer is enabled (read by its _is_enabled; a
        # configurator replaces the object): read here without the call, per attempt.
        self._configured = hasattr(getattr(tracer, "_tracer_config", None), "is_enabled")
        self._pipeline: _Pipeline = ((), (), ())
        # The SDK's own generator draws a span id as random.getrandbits(64) (again while
        # 0): run_child draws one the same way, without its call per step attempt.
        self._bits = random.getrandbits if type(self.ids) is RandomIdGenerator else None

    def pipeline(self) -> _Pipeline:
        """The span processors' ``on_start``, ``_on_ending`` and ``on_end``, each only
        where it does something (the SDK's processors have no ``on_start``): the
        provider's multi-processor's members, called in order as it calls them, without
        its loops. Worked out again when a processor is added."""
        processor = self.tracer.span_processor
        members = (processor._span_processors  # a tuple, replaced when one is added
                   if type(processor) is SynchronousMultiSpanProcessor else processor)
        if members is not self._members:
            each = members if isinstance(members, tuple) else (members,)
            self._pipeline = (_hooks(each, "on_start"), _hooks(each, "_on_ending"),
                              tuple(p.on_end for p in each))
            self._members = members
        return self._pipeline

    def enabled(self) -> bool:
        """False when the SDK is told to make no spans for this tracer (a tracer
        configurator): the generic path then returns the SDK's non-recording spans."""
        if self._configured:
            return bool(self.tracer._tracer_config.is_enabled)
        check = self._is_enabled
        return True if check is None else bool(check())

    def attempt(self, name: str, run: trace.SpanContext, attributes: dict[str, Any]
                ) -> Callable[[BaseException | None], None] | None:
        """A step attempt's span (:meth:`run_child`), made current (:func:`entered`):
        what ends it, or None when the tracer is disabled (the caller then takes the
        generic API's path)."""
        if not self.enabled():
            return None
        return entered(self.run_child(name, run, attributes))

    def run_child(self, name: str, run: trace.SpanContext, attributes: dict[str, Any]
                  ) -> LightSpan | trace.NonRecordingSpan:
        """:meth:`start` on the hot path, a step attempt's span: started now, of kind
        INTERNAL, without links, child of ``run``, a run's span context as
        :func:`~duro.tracing._ids.run_entry` makes it (remote, sampled, no trace state,
        not a random trace id). ``attributes``: a dict of the caller's own, which the
        span keeps as it is when the limits cannot cut it.

        What :meth:`start` does, in one call, when the sampler decides from the parent's
        flags (the SDK's stock samplers) and no processor has ``on_start`` (the SDK's
        own have none, or an empty one); else :meth:`start` itself."""
        decision = self._under_run
        if decision is None or self.pipeline()[0] or len(attributes) > self._plain_attributes:
            return self.start(name, context_of(run), run, attributes=attributes)
        flags = _SAMPLED if decision is _RECORD_AND_SAMPLE else _NOT_SAMPLED
        bits = self._bits
        if bits is None:
            span_id = self.ids.generate_span_id()
        else:  # as the SDK's RandomIdGenerator draws one, without its call
            span_id = bits(64)
            while not span_id:
                span_id = bits(64)
        ctx = _new_tuple(trace.SpanContext, (run.trace_id, span_id, False, flags,
                                             _NO_STATE, 0 < span_id < _SPAN_IDS)) \
            if _TUPLE_LAYOUT \
            else trace.SpanContext(run.trace_id, span_id, False, flags)
        if decision is _DROP:
            return trace.NonRecordingSpan(ctx)
        return LightSpan(self, name, ctx, run, _INTERNAL, attributes, (), time.time_ns())

    def begin(self, name: str, kind: SpanKind, attributes: dict[str, Any]
              ) -> tuple[LightSpan | trace.NonRecordingSpan,
                         Callable[[BaseException | None], None]] | None:
        """A span of the current context's current span (a client call's, :meth:`start`),
        made current there (:func:`entered`): the span and what ends it; None when the
        tracer is disabled (the caller then takes the generic API's path)."""
        if not self.enabled():
            return None
        context = otel_context.get_current()
        span = self.start(name, context, trace.get_current_span(context).get_span_context(),
                          kind=kind, attributes=attributes)
        return span, entered(span, context)

    def start(self, name: str, context: Any, parent: trace.SpanContext | None, *,
              kind: SpanKind = SpanKind.INTERNAL,
              attributes: Mapping[str, types.AttributeValue] | None = None,
              links: Sequence[Link] = (), start_time: int | None = None
              ) -> LightSpan | trace.NonRecordingSpan:
        """A span started now (or at ``start_time``), child of ``parent`` (the span in
        ``context``; None: a root span, of a new trace), sampled by the provider's
        sampler: a :class:`LightSpan` when recorded, else a non-recording span that still
        carries its context to children."""
        ids = self.ids
        if parent is None or not parent.is_valid:
            parent = None
            trace_id = ids.generate_trace_id()
            random_id = ids.is_trace_id_random()
        else:
            trace_id = parent.trace_id
            random_id = parent.trace_flags.random_trace_id
        decision, sampled, ctx = self._sample(context, parent, trace_id, ids.generate_span_id(),
                                              random_id, name, kind, attributes, links)
        if decision is _DROP:
            return trace.NonRecordingSpan(ctx)
        span = LightSpan(self, name, ctx, parent, kind, self._attributes(sampled),
                         self._links(links) if links else (),
                         time.time_ns() if start_time is None else start_time)
        starts = self.pipeline()[0]
        for start in starts:
            start(span, parent_context=context)
        return span

    def _sample(self, context: Any, parent: trace.SpanContext | None, trace_id: int,
                span_id: int, random_id: bool, name: str, kind: SpanKind,
                attributes: Mapping[str, types.AttributeValue] | None,
                links: Sequence[Link]) -> tuple[Decision, Any, trace.SpanContext]:
        """The provider's sampler's decision on a span, the attributes it gives the span,
        and the span's context (flags and trace state as the sampler decided, as the
        SDK's tracer makes them). ``parent``: the span context in ``context`` (None for
        none, or an invalid one)."""
        static = self.static
        if static is not None:
            # The SDK's stock samplers (parent-based over always-on/off: the default),
            # decided here as they decide, without their per-span calls and objects.
            if parent is None:
                decision = static[0]
                trace_state = None
            else:
                decision = static[1 + 2 * (not parent.is_remote)
                                  + (not parent.trace_flags.sampled)]
                trace_state = parent.trace_state
            if decision is not None:
                return decision, attributes if decision is not _DROP else None, \
                    _context(trace_id, span_id, random_id, decision, trace_state)
        if context is None:  # record()'s, made when asked for
            context = context_of(parent)
        result = self.tracer.sampler.should_sample(context, trace_id, name, kind,
                                                   attributes, links)
        return result.decision, result.attributes, _context(
            trace_id, span_id, random_id, result.decision, result.trace_state)

    def _attributes(self, given: Mapping[str, Any] | None) -> dict[str, Any] | Any:
        """A new span's attributes: a plain dict of duro's own few attributes when the
        limits cannot bite (the common case: no length limit, fewer than the count
        limit); else bounded and cleaned as the SDK does."""
        if not given:
            return {}
        if len(given) <= self._plain_attributes:
            return dict(given)
        limits = self.limits
        return BoundedAttributes(limits.max_span_attributes, given, immutable=False,
                                 max_value_len=limits.max_span_attribute_length)

    def _links(self, links: Sequence[Link] | None
               ) -> tuple[Link, ...] | list[Link] | BoundedList[Link]:
        """Valid links, bounded as the SDK bounds them (the newest kept)."""
        if not links:
            return ()
        limits = self.limits
        return BoundedList.from_seq(limits.max_links, [
            Link(link.context, BoundedAttributes(limits.max_link_attributes, link.attributes,
                                                 max_value_len=limits.max_attribute_length))
            for link in links if link.context.is_valid])

    def record(self, name: str, context: Any, parent: trace.SpanContext | None, *,
               span_id: int | None = None, trace_id: int | None = None,
               kind: SpanKind = SpanKind.INTERNAL,
               attributes: Mapping[str, types.AttributeValue] | None = None,
               links: Sequence[Link] = (), start_time: int, end_time: int,
               status: Status = _UNSET) -> None:
        """A span whose times are known already (begun and ended in the past), handed
        to the processors' ``on_end`` if sampled. ``span_id``/``trace_id`` name it
        (a run's logical span: ids derived from its run id) instead of the provider's
        id generator. ``context``: the one whose current span is ``parent``; None: made
        (from the current one) only if a sampler or an ``on_start`` asks for it."""
        valid = parent if parent is not None and parent.is_valid else None
        if valid is None:
            if trace_id is None:
                # A new trace: its id the provider's, random if it says so (as the SDK).
                trace_id = self.ids.generate_trace_id()
                random_id = self.ids.is_trace_id_random()
            else:
                random_id = False  # ids of its own (a run's), made by no generator
        else:
            trace_id = valid.trace_id if trace_id is None else trace_id
            random_id = valid.trace_id == trace_id and valid.trace_flags.random_trace_id
        starts = self.pipeline()[0]
        if context is None and (self.static is None or starts):
            context = context_of(valid)
        decision, sampled, ctx = self._sample(
            context, valid, trace_id,
            span_id if span_id is not None else self.ids.generate_span_id(),
            random_id, name, kind, attributes, links)
        if decision is _DROP:
            return
        span = LightSpan(self, name, ctx, valid, kind, self._attributes(sampled),
                         self._links(links) if links else (), start_time)
        for start in starts:
            start(span, parent_context=context)
        if status.status_code is not StatusCode.UNSET:
            span.set_status(status)
        span.end(end_time)


def context_of(parent: trace.SpanContext | None) -> Context:
    """A context whose current span is ``parent`` (the current context's others kept);
    an empty one for none (a root span's)."""
    if parent is None:
        return Context()
    return trace.set_span_in_context(trace.NonRecordingSpan(parent))


def _hooks(processors: tuple[Any, ...], name: str) -> tuple[Any, ...]:
    """Each processor's hook ``name``, but for those that would only run an empty
    function (the base class's, or an override whose body is ``pass``, as the SDK's
    ``SimpleSpanProcessor.on_start`` is): calling it would change nothing. Asked of the
    bound method: a hook set on the instance, or a mock, counts as the processor's own."""
    return tuple(hook for processor in processors
                 if (hook := getattr(processor, name, None)) is not None
                 and not _does_nothing(getattr(hook, "__func__", hook)))


_EMPTY_BODY = ({"LOAD_CONST", "RETURN_VALUE"}, {"RETURN_CONST"})
"""The instructions of a function body that only returns None (3.11; 3.12 on)."""


def _does_nothing(function: Any) -> bool:
    """Whether ``function`` is a plain Python function whose body returns None and does
    nothing else (``pass``, or a docstring): its bytecode says so."""
    code = getattr(function, "__code__", None)
    if code is None or type(function) is not FunctionType:
        return False
    ops = [ins for ins in dis.get_instructions(code)
           if ins.opname not in ("RESUME", "NOP", "CACHE")]
    if {ins.opname for ins in ops} not in _EMPTY_BODY or len(ops) > 2:
        return False
    return all(ins.argval is None for ins in ops if ins.opname != "RETURN_VALUE")


def _context(trace_id: int, span_id: int, random_id: bool, decision: Decision,
             trace_state: trace.TraceState | None) -> trace.SpanContext:
    """A new span's context, its flags as the sampler decided (as the SDK makes it)."""
    flags = (_SAMPLED if decision is _RECORD_AND_SAMPLE else _NOT_SAMPLED) if not random_id \
        else (_SAMPLED_RANDOM if decision is _RECORD_AND_SAMPLE else _NOT_SAMPLED_RANDOM)
    if not _TUPLE_LAYOUT:
        return trace.SpanContext(trace_id, span_id, False, flags, trace_state)
    # As SpanContext.__new__ makes it (its validity check included: a custom id
    # generator's ids may be out of range), without its call.
    return _new_tuple(trace.SpanContext, (
        trace_id, span_id, False, flags, _NO_STATE if trace_state is None else trace_state,
        0 < trace_id < _TRACE_IDS and 0 < span_id < _SPAN_IDS))


def _static_decisions(sampler: Sampler) -> tuple[Decision | None, ...] | None:
    """For the SDK's ``ParentBased`` sampler (the default) or a ``StaticSampler``
    (``ALWAYS_ON``, ``ALWAYS_OFF``), exactly those classes: the decision for a span
    without a parent, then with a remote parent sampled / not sampled, then a local
    parent sampled / not sampled (None where the sampler that decides is another kind,
    which is then asked). None for any other sampler (always asked).

    Both decide from the parent's flags alone and give the span the parent's trace state
    and the attributes it was given (none when dropped): what :meth:`Spans._sample` then
    does without the calls and objects of a sampling result per span."""
    if type(sampler) is StaticSampler:
        return (sampler._decision,) * 5
    if type(sampler) is not ParentBased:
        return None
    delegates = (sampler._root, sampler._remote_parent_sampled,
                 sampler._remote_parent_not_sampled, sampler._local_parent_sampled,
                 sampler._local_parent_not_sampled)
    return tuple(d._decision if type(d) is StaticSampler else None
                 for d in delegates)


class LightSpan(trace.Span, ReadableSpan):
    """A recording span of :class:`Spans`: what the SDK's span records, read as the SDK's
    span reads (a processor's ``on_start`` may look at its fields), bounded by the
    provider's limits as the SDK bounds them (the oldest attribute, event or link gives
    way), with plain containers until the step's own code writes to it.

    Once ended it is its own :class:`ReadableSpan` (as the SDK's span is one): nothing
    changes it any more, so the processors' ``on_end`` gets it rather than a copy."""

    __slots__ = ("_attributes", "_context", "_end_time", "_events", "_kind", "_links",
                 "_lock", "_name", "_owner", "_parent", "_start_time", "_status", "_token")

    # ReadableSpan's fields, as a started span has them (its to_json reads them).
    _context: trace.SpanContext
    _start_time: int
    _attributes: dict[str, Any] | BoundedAttributes
    _token: Any
    """What :func:`entered` made it current with (set there, as it becomes current)."""

    def __init__(self, owner: Spans, name: str, ctx: trace.SpanContext,
                 parent: trace.SpanContext | None, kind: SpanKind,
                 attributes: dict[str, Any] | BoundedAttributes,
                 links: tuple[Link, ...] | list[Link] | BoundedList[Link], start: int
                 ) -> None:
        self._owner = owner
        self._name = name
        self._context = ctx
        self._parent = parent
        self._kind = kind
        self._attributes = attributes
        self._links: tuple[Link, ...] | list[Link] | BoundedList[Link] = links
        self._events: Sequence[Event] = ()  # most spans get none: bounded when one comes
        self._status = _UNSET
        self._start_time = start
        self._end_time: int | None = None
        # A sync step's code writes from its thread while the loop may end the span
        # (a timeout): one at a time, as with the SDK's span. One lock per span, not
        # one per tracer: a write may log (an invalid value), and a slow log handler
        # must hold up no other span. Made by the first write (most spans get none):
        # see _writing and _ended.
        self._lock: threading.Lock | None = None

    # -- what instrumentation and processors read ----------------------------------------

    def get_span_context(self) -> trace.SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end_time is None

    @property
    def name(self) -> str:
        """The span's name."""
        return self._name

    @property
    def context(self) -> trace.SpanContext:
        """The span's own context."""
        return self._context

    @property
    def parent(self) -> trace.SpanContext | None:
        """The parent's context (None: a root span)."""
        return self._parent

    @property
    def kind(self) -> SpanKind:
        """The span's kind."""
        return self._kind

    @property
    def start_time(self) -> int:
        """When it began (ns since the epoch)."""
        return self._start_time

    @property
    def end_time(self) -> int | None:
        """When it ended (None while it goes on)."""
        return self._end_time

    @property
    def status(self) -> Status:
        """Its status so far."""
        return self._status

    @property
    def attributes(self) -> Mapping[str, Any]:
        """Its attributes so far (a copy while it records: the step's code may add)."""
        attributes = self._attributes
        return MappingProxyType(attributes if self._end_time is not None
                                else dict(attributes))

    @property
    def events(self) -> tuple[Event, ...]:
        """Its events so far."""
        return tuple(self._events)

    @property
    def links(self) -> tuple[Link, ...]:
        """Its links."""
        return tuple(self._links)

    @property
    def resource(self) -> Resource:
        """The provider's resource."""
        return self._owner.tracer.resource

    @property
    def instrumentation_scope(self) -> InstrumentationScope:
        """duro's instrumentation scope."""
        return self._owner.scope

    @property
    def instrumentation_info(self) -> Any:
        """duro's instrumentation info (deprecated by OpenTelemetry for the scope)."""
        return self._owner.tracer.instrumentation_info

    @property
    def dropped_attributes(self) -> int:
        """Attributes the limits dropped."""
        attributes = self._attributes
        return attributes.dropped if isinstance(attributes, BoundedAttributes) else 0

    @property
    def dropped_events(self) -> int:
        """Events the limits dropped."""
        events = self._events
        return events.dropped if isinstance(events, BoundedList) else 0

    @property
    def dropped_links(self) -> int:
        """Links the limits dropped."""
        links = self._links
        return links.dropped if isinstance(links, BoundedList) else 0

    # -- what the step's code may add ----------------------------------------------------

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        with self._writing():  # all of them or none, as the SDK's span
            if self._end_time is not None:
                return
            bounded = self._bounded()
            for key, value in attributes.items():
                bounded[key] = value

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        with self._writing():
            if self._end_time is not None:
                return
            self._bounded()[key] = value

    def _bounded(self) -> BoundedAttributes:
        """The attributes, in the SDK's container from the first write of the step's
        code on: checked, cleaned and bounded as the SDK does (an invalid value dropped
        with a warning; beyond the count limit the oldest gives way). Under the lock."""
        attributes = self._attributes
        if not isinstance(attributes, BoundedAttributes):
            limits = self._owner.limits
            attributes = self._attributes = BoundedAttributes(
                limits.max_span_attributes, attributes, immutable=False,
                max_value_len=limits.max_span_attribute_length)
        return attributes

    def add_event(self, name: str, attributes: types.Attributes = None,
                  timestamp: int | None = None) -> None:
        limits = self._owner.limits
        event = Event(name, BoundedAttributes(limits.max_event_attributes, attributes,
                                              max_value_len=limits.max_attribute_length),
                      timestamp)
        with self._writing():
            if self._end_time is not None:
                return
            events = self._events
            if not isinstance(events, BoundedList):
                events = self._events = BoundedList(limits.max_events)
            events.append(event)

    def add_link(self, context: trace.SpanContext, attributes: types.Attributes = None
                 ) -> None:
        if not context.is_valid:
            return
        limits = self._owner.limits
        link = Link(context, BoundedAttributes(limits.max_link_attributes, attributes,
                                               max_value_len=limits.max_attribute_length))
        with self._writing():
            if self._end_time is not None:
                return
            if not isinstance(self._links, BoundedList):
                self._links = BoundedList.from_seq(limits.max_links, self._links)
            self._links.append(link)

    def update_name(self, name: str) -> None:
        with self._writing():
            if self._end_time is None:
                self._name = name

    def set_status(self, status: Status | StatusCode,
                   description: str | None = None) -> None:
        if isinstance(status, StatusCode):
            status = Status(status, description)
        with self._writing():
            if self._end_time is not None or self._status.status_code is StatusCode.OK:
                return  # as the SDK: OK is final
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

    def _writing(self) -> threading.Lock:
        """The span's lock, made by the first to ask (under a lock shared by all spans,
        held only to put it in place)."""
        lock = self._lock
        if lock is None:
            # Made before _MAKING is taken: nothing that allocates or calls runs while
            # it is held, so no collection can run a finalizer there that ends a span
            # (it would wait for _MAKING in the thread that holds it).
            made = threading.Lock()
            with _MAKING:
                lock = self._lock
                if lock is None:
                    lock = self._lock = made
        return lock

    def _ended(self, end_time: int | None) -> bool:
        """Set the end time, unless the span has ended already (False then). Without
        a lock of its own (no write began), under the shared one: a write then makes
        the span's lock after this, and finds the span ended."""
        if end_time is None:
            end_time = time.time_ns()  # read first: nothing is called under _MAKING
        if self._lock is None:
            with _MAKING:
                if self._lock is None:
                    if self._end_time is not None:
                        return False
                    self._end_time = end_time
                    return True
        with self._writing():
            if self._end_time is not None:
                return False
            self._end_time = end_time
            return True

    def end(self, end_time: int | None = None) -> None:
        if not self._ended(end_time):
            return
        _, endings, ends = self._owner.pipeline()
        for ending in endings:
            ending(self)  # as the SDK: processors may look at the span as it ends
        for end in ends:
            end(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> ReadableSpan:
        """A copy as the SDK's processors get it (a :class:`ReadableSpan`): the span
        itself holds a lock and its provider, which a deep copy must not take."""
        owner = self._owner
        return copy.deepcopy(ReadableSpan(
            name=self._name, context=self._context, parent=self._parent,
            resource=owner.tracer.resource, attributes=self._attributes,
            events=self._events, links=self._links, kind=self._kind, status=self._status,
            start_time=self._start_time, end_time=self._end_time,
            instrumentation_scope=owner.scope), memo)

    def __call__(self, error: BaseException | None) -> None:
        """:func:`close` for a span :func:`entered` made current (its token kept here):
        the span is its own end, no closure made per span (a step attempt's, on the hot
        path)."""
        close(self, self._token, error)


def enter(span: trace.Span, context: Any = None) -> Any:
    """Make ``span`` current (in ``context``, default the current one, as
    ``set_span_in_context`` makes it) and return the token :func:`leave` takes. Sets
    OpenTelemetry's context variable directly while its runtime context is the default
    one (what ``attach`` does, without its calls); else through the API."""
    if _CURRENT is not None and otel_context._RUNTIME_CONTEXT is _RUNTIME:
        return _CURRENT.set(Context({**(_CURRENT.get() if context is None else context),
                                     _SPAN_KEY: span}))
    return otel_context.attach(Context({
        **(otel_context.get_current() if context is None else context), _SPAN_KEY: span}))


def leave(token: Any) -> None:
    """Undo :func:`enter` (a token of the context variable itself is reset there: the
    runtime context may have been replaced since)."""
    if type(token) is Token and token.var is _CURRENT:
        _CURRENT.reset(token)
    else:
        otel_context.detach(token)


def close(span: trace.Span, token: Any, error: BaseException | None) -> None:
    """End ``span`` (any span: duro's own, or a provider's through the generic API),
    made current by :func:`enter` (``token``), once the code it covered is over: what
    the SDK's ``use_span`` does on leaving its block. An ``Exception`` that code raised
    is recorded on a recording span and makes its status an error; the context is reset
    and the span ended whatever happens."""
    try:
        if isinstance(error, Exception) and span.is_recording():
            _failed(span, error)
    finally:
        try:
            leave(token)
        finally:
            span.end()


def entered(span: LightSpan | trace.Span, context: Any = None
            ) -> Callable[[BaseException | None], None]:
    """Make ``span`` current (:func:`enter`) and return what ends it there (:func:`close`),
    to be called with what the code it covered raised: duro's own span is its own end
    (:meth:`LightSpan.__call__`), any other gets a closure."""
    token = enter(span, context)
    if type(span) is LightSpan:
        span._token = token
        return span
    return lambda error: close(span, token, error)


def _failed(span: trace.Span, error: Exception) -> None:
    """Mark ``span`` failed by ``error`` (the exception recorded, an error status)."""
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def _current_var() -> ContextVar[Context] | None:
    """The context variable that holds OpenTelemetry's current context, when its
    runtime context is the default (contextvars) one: setting it directly is what
    ``attach`` does, without its two calls. None for any other runtime context."""
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    return var if type(runtime) is ContextVarsRuntimeContext and \
        isinstance(var, ContextVar) else None


_RUNTIME = getattr(otel_context, "_RUNTIME_CONTEXT", None)
_CURRENT = _current_var()
_MAKING = threading.Lock()
"""Held to make a span's own lock, or to end a span that has none (LightSpan._ended)."""
