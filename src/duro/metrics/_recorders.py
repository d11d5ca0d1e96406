"""Where recorded values go: a Prometheus registry (text exposition), or an
OpenTelemetry meter. Both build their instruments from ``INSTRUMENTS``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from duro.errors import InvalidArgumentError
from duro.metrics._instruments import INSTRUMENTS, Instrument

__all__ = ["OtelRecorder", "PrometheusRecorder", "Recorder"]


class Recorder(Protocol):
    """What :class:`duro.metrics.Metrics` records into."""

    def add(self, name: str, value: float, labels: Mapping[str, str]) -> None:
        """Add to a counter."""

    def observe(self, name: str, value: float, labels: Mapping[str, str]) -> None:
        """Record a value of a histogram."""

    def set(self, name: str, value: float, labels: Mapping[str, str]) -> None:
        """Set a gauge."""


def _missing(extra: str, package: str) -> InvalidArgumentError:
    return InvalidArgumentError(f"this recorder needs {package}: "
                                f"pip install 'duro[{extra}]'")


class PrometheusRecorder:
    """Records into a ``prometheus_client`` registry of its own (extra
    ``duro[metrics]``); :meth:`exposition` is the text a ``/metrics`` scrape returns.

    Counters are exposed with the ``_total`` suffix (``duro_runs_started_total``),
    histograms with ``_bucket``/``_sum``/``_count``.
    """

    def __init__(self, registry: Any = None) -> None:
        try:
            import prometheus_client as prom
        except ImportError:
            raise _missing("metrics", "prometheus-client") from None
        self._prom = prom
        self.registry = registry if registry is not None else prom.CollectorRegistry()
        self._metrics: dict[str, Any] = {}
        self._children: dict[tuple[Any, ...], Any] = {}
        for instrument in INSTRUMENTS.values():
            self._metrics[instrument.name] = self._make(instrument)

    def _make(self, i: Instrument) -> Any:
        prom = self._prom
        if i.kind == "counter":
            return prom.Counter(i.name, i.help, i.labels, registry=self.registry)
        if i.kind == "histogram":
            return prom.Histogram(i.name, i.help, i.labels, registry=self.registry,
                                  buckets=(*i.buckets, float("inf")))
        return prom.Gauge(i.name, i.help, i.labels, registry=self.registry)

    def _child(self, name: str, labels: Mapping[str, str]) -> Any:
        # prometheus_client's labels() checks and locks on every call (a few µs a step
        # outcome): the child of each label set is kept (as the registry keeps it too).
        key = (name, *labels.items())
        child = self._children.get(key)
        if child is None:
            metric = self._metrics[name]
            child = self._children[key] = metric.labels(**labels) if labels else metric
        return child

    def add(self, name: str, value: float, labels: Mapping[str, str]) -> None:
        self._child(name, labels).inc(value)

    def observe(self, name: str, value: float, labels: Mapping[str, str]) -> None:
        self._child(name, labels).observe(value)

    def set(self, name: str, value: float, labels: Mapping[str, str]) -> None:
        self._child(name, labels).set(value)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format."""
        data: bytes = self._prom.generate_latest(self.registry)
        return data

    content_type = "text/plain; version=0.0.4; charset=utf-8"
    """The media type of :meth:`exposition`."""


class OtelRecorder:
    """Records through OpenTelemetry metrics (extra ``duro[otel]``): a meter named
    ``duro`` of ``meter_provider`` (default: the global one). Export them with any
    OpenTelemetry reader (OTLP, Prometheus, console)."""

    def __init__(self, meter_provider: Any = None) -> None:
        try:
            from opentelemetry import metrics
        except ImportError:
            raise _missing("otel", "opentelemetry-api") from None
        provider = meter_provider if meter_provider is not None else \
            metrics.get_meter_provider()
        meter = provider.get_meter("duro")
        self._instruments: dict[str, Any] = {}
        for i in INSTRUMENTS.values():
            if i.kind == "counter":
                made = meter.create_counter(i.name, unit=i.unit, description=i.help)
            elif i.kind == "histogram":
                made = meter.create_histogram(
                    i.name, unit=i.unit, description=i.help,
                    explicit_bucket_boundaries_advisory=list(i.buckets))
            else:
                made = meter.create_gauge(i.name, unit=i.unit, description=i.help)
            self._instruments[i.name] = made

    def add(self, name: str, value: float, labels: Mapping[str, str]) -> None:
        self._instruments[name].add(value, dict(labels))

    def observe(self, name: str, value: float, labels: Mapping[str, str]) -> None:
        self._instruments[name].record(value, dict(labels))

    def set(self, name: str, value: float, labels: Mapping[str, str]) -> None:
        self._instruments[name].set(value, dict(labels))
