"""What a log record knows of the run it was written for, and its JSON form."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import orjson

from duro.step._step import _current_step
from duro.workflow._api import current_instance

__all__ = ["ContextFilter", "JsonFormatter", "log_context"]


def log_context() -> dict[str, Any]:
    """The run context of the code running now: in workflow code, ``workflow_id``,
    ``run_id``, ``workflow`` and ``namespace``; in a step attempt, ``workflow_id``,
    ``run_id``, ``step`` and ``attempt``; elsewhere, nothing."""
    inst = current_instance()
    if inst is not None:
        return {"workflow_id": inst.workflow_id, "run_id": inst.run_id,
                "workflow": inst.workflow.name, "namespace": inst.namespace}
    info = _current_step.get()
    if info is not None:
        return {"workflow_id": info.workflow_id, "run_id": info.run_id, "step": info.step,
                "attempt": info.attempt}
    return {}


class ContextFilter(logging.Filter):
    """Adds the run context (:func:`log_context`) to every record that passes, as the
    attribute ``duro`` (a dict): so the lines libraries log from inside a step carry the
    workflow id, run id, step and attempt too. Put it on a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "duro"):
            record.duro = log_context()
        return True


_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "duro", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (ISO 8601, UTC), ``level``, ``logger``,
    ``message``, the run context (``workflow_id``, ``run_id``, ``workflow``, ``step``,
    ``attempt`` when known: see :class:`ContextFilter`), the fields given with
    ``extra=``, and ``exception`` (the formatted traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname, "logger": record.name,
            "message": record.getMessage()}
        context = getattr(record, "duro", None)
        if isinstance(context, dict):
            out.update(context)
        for key, value in vars(record).items():
            if key not in _RESERVED and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return orjson.dumps(out, default=repr).decode()
