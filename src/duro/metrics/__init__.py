"""Metrics of clients and workers: Prometheus text (``/metrics`` on ``duro serve
--metrics``, ``duro worker --metrics-port``) and the same instruments through
OpenTelemetry metrics. See docs/observability.md."""

from duro.metrics._instruments import INSTRUMENTS, Instrument
from duro.metrics._metrics import Metrics
from duro.metrics._recorders import OtelRecorder, PrometheusRecorder, Recorder

__all__ = ["INSTRUMENTS", "Instrument", "Metrics", "OtelRecorder", "PrometheusRecorder",
           "Recorder"]
