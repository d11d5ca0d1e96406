"""Checks of a worker's options, so that ``Engine(max_active=0)`` (nothing would ever
run) fails where it is written instead of leaving runs pending forever."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

from duro._checks import check_count, check_duration, check_id
from duro.errors import InvalidArgumentError

__all__ = ["WORKER_OPTIONS", "check_options"]

WORKER_OPTIONS = ("max_active", "max_cached", "max_threads", "lease", "poll_interval",
                  "workflow_task_timeout", "history_warning", "history_limit", "queues",
                  "declare", "retention", "lookahead", "tune_gc", "codec", "max_recoveries",
                  "max_child_depth", "stream_limit")
"""The keyword parameters of :class:`~duro.worker.Worker` that configure it, which
:class:`~duro.Engine` takes too and passes on."""


_CHECKS: dict[str, Callable[..., object]] = {
    "max_active": check_count,
    "max_cached": partial(check_count, minimum=0),  # 0: no cache, every resume replays
    "max_threads": check_count,
    "lease": check_duration,
    "poll_interval": check_duration,
    "workflow_task_timeout": check_duration,
    "history_warning": check_count,
    "history_limit": check_count,
    "lookahead": partial(check_duration, zero=True),  # 0 turns look-ahead off
    # Two deaths of a run count whatever it did (see _recovery.SUSPECT_AFTER): a lower
    # limit would park runs that merely shared a process with the one killing it.
    "max_recoveries": partial(check_count, minimum=2),
    "stream_limit": check_count,
}


def check_options(options: dict[str, Any]) -> None:
    """Refuse worker options that cannot work (counts below one, durations that are not
    positive and finite, a queue list that is a string...).

    Raises:
        InvalidArgumentError: An option is refused; the message names it.
    """
    for name, value in options.items():
        check = _CHECKS.get(name)
        if check is not None:
            check(value, name)
    if options.get("max_child_depth") is not None:  # None: no limit
        check_count(options["max_child_depth"], "max_child_depth", minimum=0)
    queues = options.get("queues")
    if queues is not None:
        if isinstance(queues, str):
            raise InvalidArgumentError(f"queues must be a list of queue names, not the "
                                       f"string {queues!r} (write queues=[{queues!r}])")
        for queue in queues:
            check_id(queue, "queue")
    if options.get("history_limit", math.inf) < options.get("history_warning", 0):
        raise InvalidArgumentError("history_limit must be at least history_warning")
