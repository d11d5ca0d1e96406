"""Queue declarations: limits that every worker applies when it claims runs."""

from __future__ import annotations

from datetime import timedelta

from duro._checks import check_count, check_duration, check_id
from duro.store._records import QueueConfig

__all__ = ["Queue", "declared_queues", "queue_name"]

_declared: dict[str, Queue] = {}


class Queue:
    """A named queue and its flow control, declared in code next to the workflows.

    Workers store the limits when they start; runs started with ``queue=name`` (or of a
    workflow declared with ``@duro.workflow(queue=name)``) then obey them across every
    worker. A run that only waits (a timer, a signal) holds no slot.

    Args:
        name: The queue's name.
        concurrency: Runs executing at once in the queue, across all workers.
        per_worker: Runs executing at once in the queue in one worker.
        rate_limit: Runs started per ``rate_period`` (a sliding window).
        rate_period: The window of ``rate_limit``, in seconds or as a timedelta.
        key_concurrency: Runs executing at once per ``concurrency_key`` (e.g. per
            customer); runs without a key are not limited by it.
    """

    def __init__(self, name: str, *, concurrency: int | None = None,
                 per_worker: int | None = None, rate_limit: int | None = None,
                 rate_period: float | timedelta = 1.0,
                 key_concurrency: int | None = None) -> None:
        check_id(name, "queue name")
        for label, value in (("concurrency", concurrency), ("per_worker", per_worker),
                             ("rate_limit", rate_limit), ("key_concurrency", key_concurrency)):
            if value is not None:
                check_count(value, label)
        period = check_duration(rate_period, "rate_period")
        self.config = QueueConfig(name=name, concurrency=concurrency, per_worker=per_worker,
                                  rate_limit=rate_limit, rate_period=period,
                                  key_concurrency=key_concurrency)
        self.name = name
        _declared[name] = self

    def __repr__(self) -> str:
        return f"<duro.Queue {self.name}>"


def declared_queues() -> dict[str, Queue]:
    """Every queue declared so far in this process."""
    return dict(_declared)


def queue_name(queue: str | Queue, what: str = "queue") -> str:
    """The name of a queue given by name or as its :class:`Queue` declaration.

    Raises:
        InvalidArgumentError: Neither a :class:`Queue` nor a usable name (checked where it
            is given, not at the first write that stores it).
    """
    return queue.name if isinstance(queue, Queue) else check_id(queue, what)
