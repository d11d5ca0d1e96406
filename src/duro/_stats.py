"""Analytics over the history: the read model of ``Client.stats()`` (``duro stats``,
``GET /v1/stats``).

Every figure is computed exactly from what the store keeps (see
``docs/observability.md`` for each field's definition): the runs created in a window
(``created_at >= since``) of one namespace, optionally of one workflow name, and the
step events of those runs' histories. Percentiles are nearest-rank: the ``p``-th
percentile of ``n`` sorted values is the value at rank ``ceil(p * n / 100)`` (1-based),
always one of the values measured, never an interpolation.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from duro._usage import UsageTotals

__all__ = ["ErrorCount", "Percentiles", "Stats", "StepStats", "WorkflowStats"]


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


@dataclass(frozen=True, kw_only=True, slots=True)
class Percentiles:
    """Nearest-rank percentiles of a set of durations, in seconds (None: no value)."""

    count: int
    """How many durations there are."""
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {"count": self.count, "p50": self.p50, "p95": self.p95, "p99": self.p99}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Percentiles:
        """Back from :meth:`to_json`."""
        return cls(count=int(data["count"]), p50=data.get("p50"), p95=data.get("p95"),
                   p99=data.get("p99"))


@dataclass(frozen=True, kw_only=True, slots=True)
class WorkflowStats:
    """The runs of one workflow name created in the window, by how they stand now."""

    workflow: str
    started: int
    """Runs created in the window (every status)."""
    completed: int
    failed: int
    timed_out: int
    cancelled: int
    terminated: int
    continued_as_new: int
    live: int
    """Still pending, running, suspended or parked."""
    durations: Percentiles
    """``closed_at - created_at`` of the runs that have closed (any closing status)."""
    usage: UsageTotals = field(default_factory=UsageTotals)
    """What the model calls of its runs' steps spent (the sum of its steps' usage)."""

    @property
    def completion_rate(self) -> float | None:
        """``completed / started`` (None: no run)."""
        return _rate(self.completed, self.started)

    @property
    def failure_rate(self) -> float | None:
        """``failed / started``."""
        return _rate(self.failed, self.started)

    @property
    def timeout_rate(self) -> float | None:
        """``timed_out / started``."""
        return _rate(self.timed_out, self.started)

    def to_json(self) -> dict[str, Any]:
        """The JSON form (the rates included)."""
        return {"workflow": self.workflow, "started": self.started,
                "completed": self.completed, "failed": self.failed,
                "timed_out": self.timed_out, "cancelled": self.cancelled,
                "terminated": self.terminated, "continued_as_new": self.continued_as_new,
                "live": self.live, "completion_rate": self.completion_rate,
                "failure_rate": self.failure_rate, "timeout_rate": self.timeout_rate,
                "durations": self.durations.to_json(), "usage": self.usage.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkflowStats:
        """Back from :meth:`to_json` (the rates are recomputed)."""
        return cls(workflow=data["workflow"], started=int(data["started"]),
                   completed=int(data["completed"]), failed=int(data["failed"]),
                   timed_out=int(data["timed_out"]), cancelled=int(data["cancelled"]),
                   terminated=int(data["terminated"]),
                   continued_as_new=int(data["continued_as_new"]), live=int(data["live"]),
                   durations=Percentiles.from_json(data["durations"]),
                   usage=UsageTotals.from_json(data.get("usage") or {}))


@dataclass(frozen=True, kw_only=True, slots=True)
class StepStats:
    """The attempts of one step name in the histories of one workflow's runs."""

    workflow: str
    step: str
    attempts: int
    """Attempts recorded: ``step_completed`` + ``step_retrying`` + ``step_failed`` events."""
    completed: int
    """Attempts that succeeded (``step_completed``)."""
    retries: int
    """Failed attempts that were retried (``step_retrying``): attempts beyond the first."""
    failed: int
    """Steps that failed for good (``step_failed``: the last attempt, no retry left)."""
    durations: Percentiles
    """The attempts' own durations (their events' ``duration``)."""
    usage: UsageTotals = field(default_factory=UsageTotals)
    """What the attempts' model calls spent (``duro.record_usage``), failed attempts
    included."""

    @property
    def failures(self) -> int:
        """Attempts that raised: ``retries + failed``."""
        return self.retries + self.failed

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {"workflow": self.workflow, "step": self.step, "attempts": self.attempts,
                "completed": self.completed, "retries": self.retries, "failed": self.failed,
                "failures": self.failures, "durations": self.durations.to_json(),
                "usage": self.usage.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StepStats:
        """Back from :meth:`to_json`."""
        return cls(workflow=data["workflow"], step=data["step"],
                   attempts=int(data["attempts"]), completed=int(data["completed"]),
                   retries=int(data["retries"]), failed=int(data["failed"]),
                   durations=Percentiles.from_json(data["durations"]),
                   usage=UsageTotals.from_json(data.get("usage") or {}))


@dataclass(frozen=True, kw_only=True, slots=True)
class ErrorCount:
    """How often one error type was recorded: by a step's failed attempts (``step``
    set), or as the error a run closed with (``step`` None)."""

    workflow: str
    step: str | None
    type: str
    count: int

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {"workflow": self.workflow, "step": self.step, "type": self.type,
                "count": self.count}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ErrorCount:
        """Back from :meth:`to_json`."""
        return cls(workflow=data["workflow"], step=data.get("step"), type=data["type"],
                   count=int(data["count"]))


@dataclass(frozen=True, kw_only=True, slots=True)
class Stats:
    """Analytics of the runs created since ``since`` (None: all), per workflow and step,
    with the most frequent error types (see :meth:`duro.Client.stats`)."""

    since: float | None
    """Epoch seconds: the window's start (inclusive), None for every run."""
    workflows: tuple[WorkflowStats, ...]
    """By workflow name."""
    steps: tuple[StepStats, ...]
    """By workflow name, then step name."""
    errors: tuple[ErrorCount, ...]
    """The most frequent first (ties by workflow, step, type), at most
    :data:`MAX_ERRORS`."""

    def to_json(self) -> dict[str, Any]:
        """The JSON form (``duro stats --json``, ``GET /v1/stats``)."""
        since = None if self.since is None else dt.datetime.fromtimestamp(
            self.since, tz=dt.UTC).isoformat()
        return {"since": since, "workflows": [w.to_json() for w in self.workflows],
                "steps": [s.to_json() for s in self.steps],
                "errors": [e.to_json() for e in self.errors]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Stats:
        """Back from :meth:`to_json`."""
        since = data.get("since")
        return cls(since=None if since is None else dt.datetime.fromisoformat(since).timestamp(),
                   workflows=tuple(WorkflowStats.from_json(w) for w in data["workflows"]),
                   steps=tuple(StepStats.from_json(s) for s in data["steps"]),
                   errors=tuple(ErrorCount.from_json(e) for e in data["errors"]))


MAX_ERRORS = 20
"""Error types :attr:`Stats.errors` lists at most."""
