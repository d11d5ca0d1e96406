"""``duro.logger``: a logger for workflow code that does not repeat lines on replay."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from duro.logs._context import log_context
from duro.workflow._api import current_instance

__all__ = ["WorkflowLogger", "logger"]


class WorkflowLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger for workflow and step code (``duro.logger``; the ``"duro.user"``
    logger of the standard :mod:`logging` tree).

    In workflow code, lines are dropped while the run replays its history (a worker
    taking the run over, or reloading it): each line is written once, when the code
    first runs past it. (After a crash, the code between the last recorded event and
    the crash runs again, and so do its lines.) Every record carries the run context
    (workflow id, run id, and in a step its name and attempt) as its ``duro``
    attribute, which :class:`JsonFormatter` writes as fields.
    """

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        extra = dict(kwargs.get("extra") or {})
        extra.setdefault("duro", log_context())
        kwargs["extra"] = extra
        return msg, kwargs

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        inst = current_instance()
        if inst is not None and inst.replaying:
            return
        if self.isEnabledFor(level):
            msg, kwargs = self.process(msg, kwargs)
            # The caller's file and line, not this method's (stacklevel counts from
            # the first frame outside the logging package: the user's call is the next).
            kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
            self.logger.log(level, msg, *args, **kwargs)


logger = WorkflowLogger(logging.getLogger("duro.user"))
"""The logger for workflow and step code (see :class:`WorkflowLogger`)."""
