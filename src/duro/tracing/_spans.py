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
their ``on_end``; the span (:class:`~duro.tracing._light.LightSpan`) keeps what the
step's own code adds to it (attributes, events, status, links) within the provider's
limits: exporters see what they would see from the SDK. Spans whose times are known
after the fact (a run's, a timer's, a signal's) go straight to ``on_end``.

Used only with the SDK's ``Tracer`` (anything else, and an SDK tracer a configurator has
disabled, takes the generic path: see :func:`fast_spans`)."""

from __future__ import annotations

import dis
import logging
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import FunctionType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context.context import Context
from opentelemetry.sdk.trace import (
    SpanLimits,
    SynchronousMultiSpanProcessor,
)
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, StaticSampler
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.util import types

from duro.tracing._ids import NO_STATE as _NO_STATE
from duro.tracing._ids import NOT_SAMPLED as _NOT_SAMPLED
from duro.tracing._ids import NOT_SAMPLED_RANDOM as _NOT_SAMPLED_RANDOM
from duro.tracing._ids import SAMPLED as _SAMPLED
from duro.tracing._ids import SAMPLED_RANDOM as _SAMPLED_RANDOM
from duro.tracing._ids import TUPLE_LAYOUT, ForcedIds, new_tuple, valid_context
from duro.tracing._light import CURRENT as _CURRENT
from duro.tracing._light import RUNTIME as _RUNTIME
from duro.tracing._light import UNSET as _UNSET
from duro.tracing._light import LightSpan, entered

__all__ = ["Sampled", "Spans", "context_of", "fast_spans"]

_Pipeline = tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]
_DROP = Decision.DROP
_RECORD_AND_SAMPLE = Decision.RECORD_AND_SAMPLE
_INTERNAL = SpanKind.INTERNAL
_SPAN_IDS = 1 << 64
_TRACE_IDS = 1 << 128
_SAMPLED_BIT = trace.TraceFlags.SAMPLED  # TraceFlags.sampled, without its property
_RANDOM_BIT = trace.TraceFlags.RANDOM_TRACE_ID  # TraceFlags.random_trace_id, the same
_new_tuple = new_tuple
_TUPLE_LAYOUT = TUPLE_LAYOUT
"""Whether a ``SpanContext`` is the tuple ``(trace_id, span_id, is_remote, trace_flags,
trace_state, is_valid)`` (:func:`~duro.tracing._ids._tuple_layout`): :class:`Spans`
reads span contexts by unpacking them (each field a property call otherwise, ~0.05 µs,
several per span) and makes them as such tuples."""


def fast_spans(tracer: Any) -> Spans | None:
    """:class:`Spans` over an OpenTelemetry SDK tracer; None for any other tracer (an
    API-only or vendor provider's), which duro then uses through its generic API, and
    for an OpenTelemetry API whose ``SpanContext`` is laid out otherwise (none so far)."""
    if not isinstance(tracer, SdkTracer) or not _TUPLE_LAYOUT:
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
        # Under a run whose start its sampler dropped (a remote parent not sampled).
        self._under_dropped_run = self.static[2] if self.static is not None else None
        # How many attributes a span may keep in a plain dict: none when values are
        # cut to a length (the SDK's container does it), else up to the count limit.
        self._plain_attributes = 0 if self.limits.max_span_attribute_length is not None \
            else self.limits.max_span_attributes if self.limits.max_span_attributes \
            is not None else sys.maxsize
        self._members: Any = None
        # The provider's multi-processor (its members a tuple, replaced when one is
        # added): the hot paths check that :attr:`_pipeline` is still its members'
        # without a call to :meth:`pipeline`.
        multi = tracer.span_processor
        self._multi = multi if type(multi) is SynchronousMultiSpanProcessor else None
        self._is_enabled = getattr(tracer, "_is_enabled", None)  # an SDK's since 1.3x
        # Where the SDK keeps whether the tracer is enabled (read by its _is_enabled; a
        # configurator replaces the object): read here without the call, per attempt.
        self._configured = hasattr(getattr(tracer, "_tracer_config", None), "is_enabled")
        self._pipeline: _Pipeline = ((), (), ())
        # The SDK's own generator draws a span id as random.getrandbits(64) (again while
        # 0): run_child draws one the same way, without its call per step attempt.
        self._bits = random.getrandbits if type(self.ids) is RandomIdGenerator else None
        # The same, when what else attempt() needs for its one-call path holds for good
        # (the sampler records a span under a run's): None sends each attempt the long
        # way.
        self._fast_bits = self._bits if self._under_run is _RECORD_AND_SAMPLE else None
        # The same for begin()'s root spans (the sampler records those), and their flags
        # (the SDK's random generator says its trace ids are random, W3C's flag).
        self._root_bits = self._bits if self.static is not None \
            and self.static[0] is _RECORD_AND_SAMPLE else None
        self._root_flags = _SAMPLED_RANDOM if self._root_bits is not None \
            and self.ids.is_trace_id_random() else _SAMPLED

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
                              tuple(_ender(p) for p in each))
            self._members = members
        return self._pipeline

    def _span_id(self) -> int:
        """A new span id from the provider's generator: drawn as the SDK's
        ``RandomIdGenerator`` draws one (``random.getrandbits(64)``, again while 0)
        without its call when it is that generator."""
        bits = self._bits
        if bits is None:
            return int(self.ids.generate_span_id())
        span_id: int = bits(64)
        while not span_id:
            span_id = bits(64)
        return span_id

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
        generic API's path).

        The hot path (a span per step attempt), in one call when nothing asks for more
        (the SDK's tracer enabled, its stock sampler, its own processors, its random
        ids, the default runtime context): each call saved is ~0.05 µs of the ~2.5 µs
        the whole span costs (``bench/bench_step_span.py``). Anything else:
        :meth:`run_child` and :func:`entered`."""
        if self._configured:
            if not self.tracer._tracer_config.is_enabled:
                return None
        elif self._is_enabled is not None and not self._is_enabled():
            return None
        bits = self._fast_bits
        multi = self._multi
        current = _CURRENT
        if bits is None or not run[3] & _SAMPLED_BIT or current is None \
                or otel_context._RUNTIME_CONTEXT is not _RUNTIME \
                or len(attributes) > self._plain_attributes \
                or (self._pipeline[0] if multi is not None
                    and multi._span_processors is self._members else self.pipeline()[0]):
            return entered(self.run_child(name, run, attributes))
        span_id = bits(64)  # as the SDK's RandomIdGenerator draws one, without its call
        while not span_id:
            span_id = bits(64)
        span = LightSpan(self, name, _new_tuple(trace.SpanContext, (
            run[0], span_id, False,  # valid: 0 < id < 2**64; the run's random-id flag
            _SAMPLED_RANDOM if run[3] & _RANDOM_BIT else _SAMPLED,
            run[4], True)),  # the run's trace state, as a parent-based sampler gives it
            run, _INTERNAL, attributes, (), time.time_ns())
        # enter(span), inline.
        span._token = current.set(Context({**current.get(), _SPAN_KEY: span}))
        return span

    def run_child(self, name: str, run: trace.SpanContext, attributes: dict[str, Any]
                  ) -> LightSpan | trace.NonRecordingSpan:
        """:meth:`start` on the hot path, a step attempt's span: started now, of kind
        INTERNAL, without links, child of ``run``, a run's span context as
        :func:`~duro.tracing._ids.run_entry` makes it (remote, its start's trace state;
        sampled and its trace id random as its start's flags say). ``attributes``: a dict of the
        caller's own, which the span keeps as it is when the limits cannot cut it.

        What :meth:`start` does, in one call, when the sampler decides from the parent's
        flags (the SDK's stock samplers) and no processor has ``on_start`` (the SDK's
        own have none, or an empty one); else :meth:`start` itself."""
        decision = self._under_run if run[3] & _SAMPLED_BIT else self._under_dropped_run
        if decision is None or self.pipeline()[0] or len(attributes) > self._plain_attributes:
            return self.start(name, context_of(run), run, attributes=attributes)
        ctx = _context(run[0], self._span_id(), bool(run[3] & _RANDOM_BIT), decision, run[4])
        if decision is _DROP:
            return trace.NonRecordingSpan(ctx)
        return LightSpan(self, name, ctx, run, _INTERNAL, attributes, (), time.time_ns())

    def own_trace(self, run: trace.SpanContext, name: str, attributes: dict[str, Any]
                  ) -> tuple[trace.SpanContext, Sampled]:
        """A run in a trace of its own (its headers carry no ``traceparent``: a start
        nobody traced, a schedule's, a child of such a run), as the sampler decides on
        the run's span, that trace's root (``name``, ``attributes``): ``run``, its span
        context as :func:`~duro.tracing._ids.run_entry` derives it, with the decision's
        sampled flag and the trace state the sampler gave, and the sampler's answer,
        which :meth:`record` then takes for the run's span. Its steps, timers and
        signals follow the one answer, as an SDK span's children follow their root's.
        Asked once per run in a process: a sampler that decides by the trace id (the
        SDK's ratio sampler) decides alike in every one."""
        decision, given, ctx = self._sample(None, None, run[0], run[1], False, name,
                                            _INTERNAL, attributes, ())
        state = ctx[4]  # its trace_state
        flags = _SAMPLED if decision is _RECORD_AND_SAMPLE else _NOT_SAMPLED
        # The attributes kept only when the sampler gave others than it was asked with
        # (the SDK's samplers give those back): a run's entry is kept until its end.
        kept = None if given is None or given == attributes else given
        return valid_context(run[0], run[1], True, flags, state), \
            Sampled(decision=decision, attributes=kept, trace_state=state)

    def begin(self, name: str, kind: SpanKind, attributes: dict[str, Any]
              ) -> tuple[LightSpan | trace.NonRecordingSpan,
                         Callable[[BaseException | None], None]] | None:
        """A span of the current context's current span (a client call's, :meth:`start`),
        made current there (:func:`entered`): the span and what ends it; None when the
        tracer is disabled (the caller then takes the generic API's path)."""
        if not self.enabled():
            return None
        current = _CURRENT
        direct = current is not None and otel_context._RUNTIME_CONTEXT is _RUNTIME
        context = current.get() if direct and current is not None \
            else otel_context.get_current()
        found = context.get(_SPAN_KEY)  # trace.get_current_span(context), without its calls
        if found is None or not isinstance(found, trace.Span):
            bits = self._root_bits
            if direct and current is not None and bits is not None \
                    and len(attributes) <= self._plain_attributes \
                    and not self.pipeline()[0]:
                # A root span (a call made outside any trace: the common case), as
                # start() makes it when nothing asks for more (the SDK's random ids,
                # its stock sampler recording a root span, no on_start), in one call:
                # ids drawn as the SDK's generator draws them (the trace's first).
                trace_id = bits(128)
                while not trace_id:
                    trace_id = bits(128)
                span_id = bits(64)
                while not span_id:
                    span_id = bits(64)
                root = LightSpan(self, name, _new_tuple(trace.SpanContext, (
                    trace_id, span_id, False, self._root_flags, _NO_STATE, True)),
                    None, kind, attributes, (), time.time_ns())
                root._token = current.set(Context({**context, _SPAN_KEY: root}))
                return root, root
            parent = None
        else:
            parent = found.get_span_context()
        span = self.start(name, context, parent, kind=kind, attributes=attributes)
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
        if parent is None or not parent[5]:  # its is_valid
            parent = None
            trace_id = self.ids.generate_trace_id()
            random_id = self.ids.is_trace_id_random()
        else:
            trace_id, _, _, flags, _, _ = parent
            random_id = bool(flags & _RANDOM_BIT)
        decision, sampled, ctx = self._sample(context, parent, trace_id, self._span_id(),
                                              random_id, name, kind, attributes, links)
        if decision is _DROP:
            return trace.NonRecordingSpan(ctx)
        span = LightSpan(self, name, ctx, parent, kind, self._attributes(sampled),
                         self._links(links) if links else (),
                         time.time_ns() if start_time is None else start_time)
        for start in self.pipeline()[0]:
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
                _, _, is_remote, flags, trace_state, _ = parent
                decision = static[1 + 2 * (not is_remote) + (not flags & _SAMPLED_BIT)]
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
               status: Status = _UNSET, decided: Sampled | None = None) -> None:
        """A span whose times are known already (begun and ended in the past), handed
        to the processors' ``on_end`` if sampled. ``span_id``/``trace_id`` name it
        (a run's logical span: ids derived from its run id) instead of the provider's
        id generator. ``context``: the one whose current span is ``parent``; None: made
        (from the current one) only if a sampler or an ``on_start`` asks for it.
        ``decided``: the sampler's answer, given already (:meth:`own_trace`), not asked
        again: its decision and trace state, its attributes beside ``attributes``."""
        valid = parent if parent is not None and parent[5] else None  # its is_valid
        if valid is None:
            if trace_id is None:
                # A new trace: its id the provider's, random if it says so (as the SDK).
                trace_id = self.ids.generate_trace_id()
                random_id = self.ids.is_trace_id_random()
            else:
                random_id = False  # ids of its own (a run's), made by no generator
        else:
            parent_trace, _, _, flags, _, _ = valid
            if trace_id is None:
                trace_id = parent_trace
            random_id = parent_trace == trace_id and bool(flags & _RANDOM_BIT)
        starts = self.pipeline()[0]
        if context is None and (self.static is None or starts):
            context = context_of(valid)
        if span_id is None:
            span_id = self.ids.generate_span_id()
        if decided is None:
            decision, sampled, ctx = self._sample(context, valid, trace_id, span_id,
                                                  random_id, name, kind, attributes, links)
        else:
            decision = decided.decision
            # The sampler's attributes win, as the SDK takes them; what it was not asked
            # about (the run's status, known at its end) is added.
            sampled = {**(attributes or {}), **(decided.attributes or {})}
            ctx = _context(trace_id, span_id, random_id, decision, decided.trace_state)
        if decision is _DROP:
            return
        span = LightSpan(self, name, ctx, valid, kind, self._attributes(sampled),
                         self._links(links) if links else (), start_time)
        for start in starts:
            start(span, parent_context=context)
        if status is not _UNSET and status.status_code is not StatusCode.UNSET:
            span.set_status(status)
        span.end(end_time)


@dataclass(frozen=True, kw_only=True, slots=True)
class Sampled:
    """The sampler's answer on a span decided ahead of it (:meth:`Spans.own_trace`)."""

    decision: Decision
    attributes: Mapping[str, Any] | None
    """The attributes it gave the span, if others than it was asked with (None: those)."""
    trace_state: trace.TraceState


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


_SUPPRESS_KEY = otel_context._SUPPRESS_INSTRUMENTATION_KEY
_SUPPRESSED = Context({_SUPPRESS_KEY: True})
"""What the SDK's ``SimpleSpanProcessor`` makes current while it exports a span, when the
context was empty: as it is where the worker ends a step attempt's span and records a
run's (a client call made in an application's span is not: its context is copied, as the
SDK copies it)."""
_SIMPLE_NAMES = frozenset({
    "context", "trace_flags", "sampled", "_shutdown", "logger", "warning", "_metrics",
    "drop_items", "attach", "set_value", "_SUPPRESS_INSTRUMENTATION_KEY", "finish_items",
    "span_exporter", "export", "Exception", "exception", "detach"})
"""The names the SDK's ``SimpleSpanProcessor.on_end`` uses (1.43 to 1.45): one that uses
others does something :func:`_ender` does not know, and is called as it is."""
_SIMPLE_LOG = logging.getLogger("opentelemetry.sdk.trace.export")
"""The SDK's exporting module's logger (where its processor logs an export's failure)."""


def _ender(processor: Any) -> Callable[[LightSpan], None]:
    """What ends a span for ``processor``: its ``on_end``; for the SDK's own
    ``SimpleSpanProcessor``, what its ``on_end`` does, without its calls (a third of a
    step attempt's span, measured: ~11,800 instructions against ~4,600 here).

    That is, for a sampled span: the instrumentation suppressed in the current context
    (the context var set directly; :data:`_SUPPRESSED` when the context is empty, else
    the context copied with the key), the span handed to the processor's exporter, an
    ``Exception`` there logged as the SDK logs it (a ``BaseException`` goes through, the
    context restored, as 1.45 does). Where SDK versions differ: a processor shut down
    exports nothing where the SDK says so (1.45 on: its own ``on_end`` is called for
    that; 1.43 and 1.44 export). Everything else takes the processor's own
    ``on_end``: the SDK's internal metrics turned on (when and with what their count is
    told changed between versions), a runtime context other than the default one, a
    subclass, an ``on_end`` set on the instance, or one using names the SDK's never
    used so far (1.43 to 1.45)."""
    on_end: Callable[[LightSpan], None] = processor.on_end
    current = _CURRENT
    metrics = getattr(processor, "_metrics", None)
    if type(processor) is not SimpleSpanProcessor or "on_end" in vars(processor) \
            or current is None or not hasattr(processor, "span_exporter") \
            or (metrics is not None and type(metrics).__name__ != "NoOpProcessorMetrics") \
            or not set(SimpleSpanProcessor.on_end.__code__.co_names) <= _SIMPLE_NAMES:
        return on_end
    shut = "_shutdown" in vars(processor)  # 1.45 on: its on_end refuses once shut down

    def simple_on_end(span: LightSpan) -> None:
        if not span._context[3] & _SAMPLED_BIT:  # its trace_flags: not sampled
            return
        if (shut and processor._shutdown) or otel_context._RUNTIME_CONTEXT is not _RUNTIME:
            on_end(span)  # a shut processor's warning and metrics: its own
            return
        base = current.get()
        token = current.set(_SUPPRESSED if not base else
                            Context({**base, _SUPPRESS_KEY: True}))
        try:
            processor.span_exporter.export((span,))
        except Exception:
            _SIMPLE_LOG.exception("Exception while exporting Span.")
        finally:
            current.reset(token)

    return simple_on_end


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
