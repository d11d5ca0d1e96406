"""``--tracing SPEC`` of ``duro serve`` and ``duro worker``: the OpenTelemetry tracer
provider to trace with (``console``, or ``MODULE:FACTORY`` returning one)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from duro.cli._common import EXIT_USAGE, CliError
from duro.cli._load import import_target

__all__ = ["tracing"]


def _provider(spec: str) -> Any:
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    except ImportError:
        raise CliError("--tracing needs OpenTelemetry: pip install 'duro[otel]'",
                       EXIT_USAGE) from None
    if spec == "console":
        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=sys.stderr)))
        return provider
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CliError(f"--tracing {spec!r}: give 'console' or MODULE:FACTORY (a function "
                       "returning an OpenTelemetry TracerProvider)", EXIT_USAGE)
    target: Any = import_target(module_name)
    for name in attr.split("."):
        target = getattr(target, name, None)
        if target is None:
            raise CliError(f"--tracing {spec!r}: {name!r} not found in {module_name!r}",
                           EXIT_USAGE)
    try:
        provider = target() if callable(target) else target
    except Exception as exc:
        raise CliError(f"--tracing {spec!r}: the factory raised {type(exc).__name__}: "
                       f"{exc}", EXIT_USAGE) from None
    if not callable(getattr(provider, "get_tracer", None)):
        raise CliError(f"--tracing {spec!r}: the factory gave {type(provider).__name__}, "
                       "not a TracerProvider", EXIT_USAGE)
    return provider


@contextlib.contextmanager
def tracing(spec: str | None) -> Iterator[Any]:
    """The :class:`duro.tracing.TracingInterceptor` of ``spec`` (None: no tracing), its
    provider flushed and shut down on the way out (spans still buffered are sent)."""
    if spec is None:
        yield None
        return
    provider = _provider(spec)
    from duro.tracing import TracingInterceptor

    try:
        yield TracingInterceptor(provider)
    finally:
        shutdown = getattr(provider, "shutdown", None)
        if callable(shutdown):
            shutdown()
