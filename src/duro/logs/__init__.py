"""Logs from workflow and step code: ``duro.logger`` (no repeated lines on replay, the
run's context on every record) and structured JSON logging (``JsonFormatter``,
``ContextFilter``; ``duro ... --log-format json``)."""

from duro.logs._context import ContextFilter, JsonFormatter, log_context
from duro.logs._logger import WorkflowLogger, logger

__all__ = ["ContextFilter", "JsonFormatter", "WorkflowLogger", "log_context", "logger"]
