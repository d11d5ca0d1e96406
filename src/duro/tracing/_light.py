"""duro's own recording span (:class:`LightSpan`) and making a span current: what a span
is and does once :class:`~duro.tracing._spans.Spans` has made it.

A :class:`LightSpan` records what the SDK's span records and reads as the SDK's span
reads (processors get it as their ``ReadableSpan``), within the provider's limits, with
plain containers until the step's own code writes to it. :func:`enter`, :func:`leave`,
:func:`close` and :func:`entered` make a span current and end it there, as the SDK's
``use_span`` does, setting OpenTelemetry's context variable directly while its runtime
context is the default one."""

from __future__ import annotations

import copy
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar, Token
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.util import types

if TYPE_CHECKING:
    from duro.tracing._spans import Spans

__all__ = ["CURRENT", "RUNTIME", "UNSET", "LightSpan", "close", "enter", "entered", "leave"]

UNSET = Status(StatusCode.UNSET)
"""The one unset status duro's spans share: callers pass it, and ``is`` tells it apart
from a status that was set."""
_UNSET = UNSET


class LightSpan(trace.Span, ReadableSpan):
    """A recording span of :class:`Spans`: what the SDK's span records, read as the SDK's
    span reads (a processor's ``on_start`` may look at its fields), bounded by the
    provider's limits as the SDK bounds them (the oldest attribute, event or link gives
    way), with plain containers until the step's own code writes to it.

    Once ended it is its own :class:`ReadableSpan` (as the SDK's span is one): nothing
    changes it any more, so the processors' ``on_end`` gets it rather than a copy."""

    __slots__ = ("_attributes", "_context", "_end_time", "_events", "_kind", "_links",
                 "_lock", "_name", "_owner", "_parent", "_start_time", "_status", "_token",
                 "context")

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
        # ReadableSpan's ``context`` property, as a plain field (a slot): processors
        # read it as each span ends (the SDK's twice), a call each as a property.
        self.context = ctx  # type: ignore[misc]
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
        # see _writing and end.
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

    def end(self, end_time: int | None = None) -> None:
        if end_time is None:
            end_time = time.time_ns()  # read first: nothing is called under _MAKING
        # The end time is set unless the span has ended already. Without a lock of its
        # own (no write began), under the shared one: a write then makes the span's lock
        # after this, and finds the span ended.
        lock = self._lock
        if lock is None:
            with _MAKING:
                lock = self._lock
                if lock is None:
                    if self._end_time is not None:
                        return
                    self._end_time = end_time
        if lock is not None:
            with lock:
                if self._end_time is not None:
                    return
                self._end_time = end_time
        owner = self._owner
        multi = owner._multi
        _, endings, ends = owner._pipeline if multi is not None \
            and multi._span_processors is owner._members else owner.pipeline()
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
        path), :func:`close` and :func:`leave` inline."""
        try:
            if isinstance(error, Exception) and self._end_time is None:
                _failed(self, error)
        finally:
            try:
                token = self._token
                if type(token) is Token and token.var is _CURRENT:
                    _CURRENT.reset(token)
                else:
                    otel_context.detach(token)
            finally:
                self.end()


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
RUNTIME = _RUNTIME
"""OpenTelemetry's runtime context as imported (its default one)."""
CURRENT = _CURRENT
"""The context variable that holds OpenTelemetry's current context (:func:`_current_var`):
:class:`~duro.tracing._spans.Spans` sets it directly on its hot paths."""
_MAKING = threading.Lock()
"""Held to make a span's own lock, or to end a span that has none (LightSpan.end)."""
