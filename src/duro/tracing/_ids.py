"""A run's span identity: derived from its run id, so every process that touches the run
(the worker that runs a step, the one that records its end, a child's) names the same
span without asking anyone."""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import itertools
import re
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["NOT_SAMPLED", "NOT_SAMPLED_RANDOM", "NO_STATE", "SAMPLED", "SAMPLED_RANDOM",
           "TUPLE_LAYOUT", "ForcedIds", "continued", "new_tuple", "parent_context",
           "remember", "run_entry", "run_span_context", "run_span_id", "run_trace_id",
           "valid_context"]

_PROPAGATOR = TraceContextTextMapPropagator()
SAMPLED = trace.TraceFlags(trace.TraceFlags.SAMPLED)
"""The flags of a sampled span (the one ``TraceFlags`` duro's spans share)."""
SAMPLED_RANDOM = trace.TraceFlags(trace.TraceFlags.SAMPLED | trace.TraceFlags.RANDOM_TRACE_ID)
"""The flags of a sampled span whose trace id is random (W3C's flag): a child has its
parent's, as the SDK gives them (1.43 on)."""
NOT_SAMPLED = trace.TraceFlags(trace.TraceFlags.DEFAULT)
"""The flags of a span not sampled."""
NOT_SAMPLED_RANDOM = trace.TraceFlags(trace.TraceFlags.RANDOM_TRACE_ID)
"""The flags of a span not sampled whose trace id is random."""
NO_STATE = trace.DEFAULT_TRACE_STATE
"""The empty trace state (``is``-compared on the hot paths: most spans carry none)."""
new_tuple = tuple.__new__


def _tuple_layout() -> bool:
    """Whether a ``SpanContext`` is the tuple ``(trace_id, span_id, is_remote,
    trace_flags, trace_state, is_valid)`` (as in every OpenTelemetry API so far): then
    the span contexts duro makes on its hot paths (a step attempt's, a run's) are made
    as that tuple directly, without the checks of ``SpanContext.__new__`` (~0.25 µs, the
    most of any part of a span duro makes) on ids known to be valid."""
    made = tuple.__new__(trace.SpanContext, (3, 4, False, SAMPLED, NO_STATE, True))
    real = trace.SpanContext(3, 4, False, SAMPLED)
    return made == real and (made.trace_id, made.span_id, made.is_remote, made.trace_flags,
                             made.trace_state, made.is_valid) == \
        (3, 4, False, SAMPLED, NO_STATE, True)


TUPLE_LAYOUT = _tuple_layout()


def valid_context(trace_id: int, span_id: int, is_remote: bool, flags: trace.TraceFlags,
                  state: trace.TraceState = NO_STATE) -> trace.SpanContext:
    """``SpanContext(trace_id, span_id, is_remote, flags, state)`` for ids known to be
    valid (from 1 to 2**128 - 1 and 2**64 - 1), without the constructor's checks where
    the layout allows (:data:`TUPLE_LAYOUT`)."""
    if TUPLE_LAYOUT:
        return new_tuple(trace.SpanContext, (trace_id, span_id, is_remote, flags, state,
                                             True))
    return trace.SpanContext(trace_id, span_id, is_remote, flags, state)


_CANONICAL = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
"""A ``traceparent`` as duro and most tracers write it (version 00, nothing after)."""


def _digest(run_id: str) -> bytes:
    return hashlib.sha256(b"duro-run:" + run_id.encode()).digest()


def _span_id(digest: bytes) -> int:
    return int.from_bytes(digest[:8], "big") or 1


def _trace_id(digest: bytes) -> int:
    return int.from_bytes(digest[8:24], "big") or 1


def run_span_id(run_id: str) -> int:
    """The span id of the run's logical span (never 0, the invalid id)."""
    return _span_id(_digest(run_id))


def run_trace_id(run_id: str) -> int:
    """The trace id of a run started outside any trace (its own trace)."""
    return _trace_id(_digest(run_id))


def parent_context(headers: Mapping[str, str] | None) -> trace.SpanContext | None:
    """The span context a run's headers carry (``traceparent``), if any."""
    if not headers:
        return None
    value = headers.get("traceparent")
    if value is None:
        return None
    match = _CANONICAL.fullmatch(value) if "tracestate" not in headers else None
    if match is not None:
        # The common form, read as the W3C propagator reads it (~0.6 µs against its ~3:
        # a run's first step pays it); anything else is the propagator's to read.
        trace_hex, span_hex, flags = match.groups()
        trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
        if trace_id and span_id:  # in range: 32 and 16 hex digits
            return valid_context(trace_id, span_id, True, SAMPLED if flags == "01"
                                 else trace.TraceFlags(int(flags, 16)))
        return None
    ctx = _PROPAGATOR.extract(dict(headers))
    span = trace.get_current_span(ctx).get_span_context()
    return span if span.is_valid else None


def run_span_context(run_id: str, headers: Mapping[str, str] | None = None
                     ) -> trace.SpanContext:
    """The span context of the run's logical span: its trace is the one its headers
    carry (the start's), else its own; its span id is derived from ``run_id``. Its
    sampled flag is the start's; a run in a trace of its own is flagged sampled here
    (what a tracer's sampler decides on it is the tracer's)."""
    return _derive(run_id, headers)[0]


def run_entry(run_id: str, headers: Mapping[str, str] | None = None
              ) -> tuple[trace.SpanContext, trace.SpanContext | None]:
    """:func:`run_span_context` and the span context the run's ``traceparent`` names
    (its start's, None for none), for a worker: from the cache, by the run id alone. A
    run's headers are set at its start and never change, so they are read only when the
    run is not cached (every step attempt of the run asks: the run's data is out of the
    processor's caches by then, ~1,000 other runs' work later, and each read costs)."""
    found = _runs.get(run_id)
    if found is None:
        found = remember(_runs, run_id, _derive(run_id, headers))
    return found


_V = TypeVar("_V")


def remember(cache: dict[str, _V], run_id: str, value: _V) -> _V:
    """Put ``value`` in ``cache`` (a run's, by its run id) and return it; a full cache
    (:data:`_CACHED` runs) first lets its oldest quarter go (insertion order: the runs
    still stepping are mostly the recent ones, and clearing everything made each of them
    work its entry out again at once)."""
    if len(cache) >= _CACHED:
        for old in list(itertools.islice(cache, _CACHED // 4)):
            del cache[old]
    cache[run_id] = value
    return value


def _derive(run_id: str, headers: Mapping[str, str] | None
            ) -> tuple[trace.SpanContext, trace.SpanContext | None]:
    parent = parent_context(headers)
    digest = _digest(run_id)
    trace_id = parent[0] if parent is not None else _trace_id(digest)  # its trace_id
    # In its start's trace: sampled as the start was (a run started in a trace its
    # sampler dropped records no span, nor do its steps, as the SDK's children of an
    # unsampled parent), its trace id random if the start's flags say so. In a trace of
    # its own (no traceparent: a start nobody traced), flagged sampled here, which the
    # tracing interceptor replaces by its sampler's decision (Spans.own_trace); its id,
    # a digest, is not random.
    if parent is None:
        return valid_context(trace_id, _span_id(digest), True, SAMPLED), None
    # Its trace state the start's, as the SDK's parent-based samplers give a child its
    # parent's: the run's steps carry it on.
    return valid_context(trace_id, _span_id(digest), True, _FLAGS[parent[3] & _KEPT_FLAGS],
                         parent[4]), parent


_KEPT_FLAGS = trace.TraceFlags.SAMPLED | trace.TraceFlags.RANDOM_TRACE_ID
_FLAGS = (NOT_SAMPLED, SAMPLED, NOT_SAMPLED_RANDOM, SAMPLED_RANDOM)
"""A run's flags by its start's sampled and random-trace-id bits (W3C's only two)."""


_CACHED = 16_384
"""More than a worker's active runs by default (10,000): a step of each finds its run's
span context here (measured: ~0.46 KB an entry with a ``traceparent``, ~0.25 without;
~7.5 MB when full)."""
_runs: dict[str, tuple[trace.SpanContext, trace.SpanContext | None]] = {}
"""Recent runs' span contexts: each step attempt of a run needs its run's (a digest and a
``traceparent`` parse, ~4 µs, saved)."""


@contextlib.contextmanager
def continued(headers: Mapping[str, str]) -> Iterator[None]:
    """Make the trace context a request carries (``traceparent``) the current one."""
    token = otel_context.attach(_PROPAGATOR.extract(dict(headers)))
    try:
        yield
    finally:
        otel_context.detach(token)


def inject(headers: dict[str, str], context: Any = None) -> None:
    """Write the current (or ``context``'s) span as ``traceparent``/``tracestate``."""
    _PROPAGATOR.inject(headers, context=context)


_forced: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar(
    "duro_forced_ids", default=None)


class ForcedIds:
    """An OpenTelemetry SDK id generator that returns the given (trace id, span id) for
    the one span duro makes while ``forced`` is set (a run's logical span), and the
    wrapped generator's otherwise."""

    def __init__(self, wrapped: Any) -> None:
        self.wrapped = wrapped

    def generate_span_id(self) -> int:
        ids = _forced.get()
        return ids[1] if ids is not None else int(self.wrapped.generate_span_id())

    def generate_trace_id(self) -> int:
        ids = _forced.get()
        return ids[0] if ids is not None else int(self.wrapped.generate_trace_id())

    def is_trace_id_random(self) -> bool:
        """Whether trace ids are random (W3C's flag): a forced one is a digest."""
        if _forced.get() is not None:
            return False
        check = getattr(self.wrapped, "is_trace_id_random", None)
        return bool(check()) if check is not None else False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)

    @staticmethod
    def forced(trace_id: int, span_id: int) -> contextvars.Token[tuple[int, int] | None]:
        return _forced.set((trace_id, span_id))

    @staticmethod
    def reset(token: contextvars.Token[tuple[int, int] | None]) -> None:
        _forced.reset(token)
