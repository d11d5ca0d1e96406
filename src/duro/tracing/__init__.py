"""OpenTelemetry tracing of clients and workers (extra ``duro[otel]``): spans for client
calls, one logical span per run across suspensions and workers, a span per step attempt,
timers and signals; W3C trace context carried in a run's headers. See
docs/observability.md."""

from duro.tracing._ids import run_span_context
from duro.tracing._interceptor import TracingInterceptor

__all__ = ["TracingInterceptor", "run_span_context"]
