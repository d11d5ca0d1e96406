"""Analytics over the history (``Client.stats``), once for every dialect: the dialects'
``stats_*`` queries aggregate in the database (one row per workflow, step or error type
comes back); this assembles the read model."""

from __future__ import annotations

import math
from typing import Any

from duro._stats import MAX_ERRORS, ErrorCount, Percentiles, Stats, StepStats, WorkflowStats
from duro._usage import UsageTotals
from duro.store._base._dialect import Dialect
from duro.store._records import LIVE_STATUSES
from duro.store._rows import Row

__all__ = ["StatsReads"]

_CLOSED = ("completed", "failed", "timed_out", "cancelled", "terminated", "continued_as_new")


def _percentiles(row: Row | None) -> Percentiles:
    if row is None:
        return Percentiles(count=0)
    return Percentiles(count=int(row["n"]), p50=row["p50"], p95=row["p95"], p99=row["p99"])


def _workflows(counts: list[Row], durations: list[Row],
               steps: tuple[StepStats, ...]) -> tuple[WorkflowStats, ...]:
    by_name: dict[str, dict[str, int]] = {}
    for r in counts:
        by_name.setdefault(r["workflow_name"], {})[r["status"]] = int(r["n"])
    timings = {r["workflow_name"]: r for r in durations}
    spent: dict[str, UsageTotals] = {}
    for step in steps:
        spent[step.workflow] = spent.get(step.workflow, UsageTotals()).add(step.usage)
    out = []
    for name in sorted(by_name):
        n = by_name[name]
        closed = {status: n.get(status, 0) for status in _CLOSED}
        out.append(WorkflowStats(
            workflow=name, started=sum(n.values()),
            live=sum(v for k, v in n.items() if k in LIVE_STATUSES), **closed,
            durations=_percentiles(timings.get(name)), usage=spent.get(name, UsageTotals())))
    return tuple(out)


def _steps(rows: list[Row]) -> tuple[StepStats, ...]:
    return tuple(sorted(
        (StepStats(workflow=r["workflow_name"], step=r["step"] or "",
                   attempts=int(r["attempts"]), completed=int(r["completed"]),
                   retries=int(r["retries"]), failed=int(r["failed"]),
                   durations=_percentiles(r) if r["n"] else Percentiles(count=0),
                   usage=UsageTotals(calls=int(r["calls"]), input_tokens=int(r["input_tokens"]),
                                     output_tokens=int(r["output_tokens"]),
                                     cost=float(r["cost"] or 0.0),
                                     unpriced_calls=int(r["unpriced"])))
         for r in rows), key=lambda s: (s.workflow, s.step)))


def _errors(rows: list[Row]) -> tuple[ErrorCount, ...]:
    counts = [ErrorCount(workflow=r["workflow_name"], step=r["step"],
                         type=r["type"] or "", count=int(r["n"])) for r in rows]
    counts.sort(key=lambda e: (-e.count, e.workflow, e.step or "", e.type))
    return tuple(counts[:MAX_ERRORS])


class StatsReads(Dialect):
    """The analytics read of :class:`~duro.store.Store`."""

    async def stats(self, *, since: float | None = None, workflow: str | None = None,
                    namespace: str | None = None) -> Stats:
        """See :meth:`duro.store.ClientStore.stats`."""
        params: dict[str, Any] = {"since": -math.inf if since is None else since,
                                  "name": workflow, "namespace": namespace}
        counts = await self._fetch("stats_runs", params)
        durations = await self._fetch("stats_run_durations", params)
        steps = _steps(await self._fetch("stats_steps", params))
        errors = await self._fetch("stats_errors", params)
        return Stats(since=since, workflows=_workflows(counts, durations, steps),
                     steps=steps, errors=_errors(errors))
