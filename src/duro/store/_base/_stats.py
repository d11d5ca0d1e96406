"""Analytics over the history (``Client.stats``), once for every dialect.

The dialects keep a rollup of what the read needs (SQLite: ``stats_runs`` and
``stats_steps``, kept by triggers, migration 0016): per namespace, workflow name and hour
of a run's creation, the runs by status, closing-duration bucket and error type, and the
step events by kind, error type, duration bucket, with their model calls' usage summed.
The read sums the whole hours of its window from the rollup (``stats_runs``,
``stats_steps``) and the runs of its partial first hour from the same facts computed raw
(``stats_runs_partial``, ``stats_steps_partial``): every count and sum is exact.

Durations are counted in log-scale buckets (bucket ``b`` holds ``[GAMMA**b,
GAMMA**(b+1))``); a percentile is the nearest-rank bucket's geometric middle
``GAMMA**(b+0.5)``, within ``sqrt(GAMMA) - 1`` (2.47%) of the nearest-rank value
measured; zero and negative durations have a bucket of their own, reported as 0.0.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from duro._history import EventKind
from duro._stats import MAX_ERRORS, ErrorCount, Percentiles, Stats, StepStats, WorkflowStats
from duro._usage import UsageTotals
from duro.store._base._dialect import Dialect
from duro.store._records import LIVE_STATUSES
from duro.store._rows import Row

__all__ = ["BUCKET_ERROR", "GAMMA", "StatsReads", "bucket_value"]

GAMMA = 1.05
"""The ratio of a duration bucket's bounds (the SQL's ``ln(1.05)``)."""
BUCKET_ERROR = math.sqrt(GAMMA) - 1
"""The largest relative error of a reported percentile (2.47%)."""
HOUR = 3600
"""The rollup's grain, in seconds of creation time (the SQL's ``listed_at / 3600``)."""
_NO_DURATION = -1_000_000
_ZERO = -999_999
_CLOSED = ("completed", "failed", "timed_out", "cancelled", "terminated", "continued_as_new")
_STEP_KINDS = (EventKind.STEP_COMPLETED, EventKind.STEP_RETRYING, EventKind.STEP_FAILED)


def bucket_value(bucket: int) -> float:
    """What a duration bucket reports: its geometric middle (0.0 for the zero bucket)."""
    return 0.0 if bucket == _ZERO else float(GAMMA ** (bucket + 0.5))


def _percentiles(histogram: Counter[int]) -> Percentiles:
    total = sum(histogram.values())
    if total == 0:
        return Percentiles(count=0)
    ordered = sorted(histogram.items())
    found: dict[int, float] = {}
    for p in (50, 95, 99):
        rank, seen = math.ceil(p * total / 100), 0
        for bucket, n in ordered:
            seen += n
            if seen >= rank:
                found[p] = bucket_value(bucket)
                break
    return Percentiles(count=total, p50=found[50], p95=found[95], p99=found[99])


@dataclass(slots=True)
class _Step:
    kinds: Counter[str] = field(default_factory=Counter)
    durations: Counter[int] = field(default_factory=Counter)
    usage: UsageTotals = field(default_factory=UsageTotals)


@dataclass(slots=True)
class _Sums:
    """The rows of both reads summed per workflow and step."""

    statuses: defaultdict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter))
    run_durations: defaultdict[str, Counter[int]] = field(
        default_factory=lambda: defaultdict(Counter))
    steps: defaultdict[tuple[str, str], _Step] = field(
        default_factory=lambda: defaultdict(_Step))
    errors: Counter[tuple[str, str | None, str]] = field(default_factory=Counter)

    def add_runs(self, rows: Iterable[Row]) -> None:
        for r in rows:
            name, n = r["workflow_name"], int(r["n"])
            self.statuses[name][r["status"]] += n
            if r["dbucket"] != _NO_DURATION:
                self.run_durations[name][int(r["dbucket"])] += n
            if r["erred"]:
                self.errors[(name, None, r["etype"])] += n

    def add_steps(self, rows: Iterable[Row]) -> None:
        for r in rows:
            name, step, n = r["workflow_name"], r["step"], int(r["n"])
            s = self.steps[(name, step)]
            s.kinds[r["kind"]] += n
            if r["dbucket"] != _NO_DURATION:
                s.durations[int(r["dbucket"])] += n
            if r["kind"] != EventKind.STEP_COMPLETED:
                self.errors[(name, step, r["etype"])] += n
            s.usage = s.usage.add(UsageTotals(
                calls=int(r["calls"]), input_tokens=int(r["input_tokens"]),
                output_tokens=int(r["output_tokens"]), cost=float(r["cost"] or 0.0),
                unpriced_calls=int(r["unpriced"])))

    def step_stats(self) -> tuple[StepStats, ...]:
        out = []
        for (name, step), s in sorted(self.steps.items()):
            completed, retries, failed = (s.kinds[k] for k in _STEP_KINDS)
            if completed + retries + failed == 0:
                continue
            out.append(StepStats(workflow=name, step=step,
                                 attempts=completed + retries + failed, completed=completed,
                                 retries=retries, failed=failed,
                                 durations=_percentiles(s.durations), usage=s.usage))
        return tuple(out)

    def workflow_stats(self, steps: tuple[StepStats, ...]) -> tuple[WorkflowStats, ...]:
        spent: dict[str, UsageTotals] = {}
        for step in steps:
            spent[step.workflow] = spent.get(step.workflow, UsageTotals()).add(step.usage)
        out = []
        for name in sorted(self.statuses):
            n = self.statuses[name]
            if sum(n.values()) == 0:
                continue
            closed = {status: n.get(status, 0) for status in _CLOSED}
            out.append(WorkflowStats(
                workflow=name, started=sum(n.values()),
                live=sum(v for k, v in n.items() if k in LIVE_STATUSES), **closed,
                durations=_percentiles(self.run_durations[name]),
                usage=spent.get(name, UsageTotals())))
        return tuple(out)

    def error_counts(self) -> tuple[ErrorCount, ...]:
        counts = [ErrorCount(workflow=w, step=s, type=t, count=n)
                  for (w, s, t), n in self.errors.items() if n > 0]
        counts.sort(key=lambda e: (-e.count, e.workflow, e.step or "", e.type))
        return tuple(counts[:MAX_ERRORS])


class StatsReads(Dialect):
    """The analytics read of :class:`~duro.store.Store`."""

    stats_batches: ClassVar[tuple[int, int]] = (500, 2000)
    """The rollup's catch-up: pending runs brought in per transaction, and batches per
    read at most (what is left is read as pending). Each dialect sets its own."""

    async def stats_catch_up(self) -> int | None:
        """Dialect hook: bring up to ``stats_batches[0]`` pending runs into the rollup
        (the ``stats_catch_up_*`` queries, in their order) in one transaction; how many
        (0 when another catch-up is at it), None on a store that does not write."""
        return None

    async def stats(self, *, since: float | None = None, workflow: str | None = None,
                    namespace: str | None = None) -> Stats:
        """See :meth:`duro.store.ClientStore.stats`: first, on a writable store, the runs
        written since the rollup counted them are brought in, a batch per transaction
        (:meth:`stats_catch_up`); the read adds whatever is left, so it is exact either
        way."""
        batch, batches = self.stats_batches
        for _ in range(batches):
            done = await self.stats_catch_up()
            if done is None or done < batch:  # all in (or another catch-up is at it)
                break
        # The rollup answers from the first whole hour on; the runs before it in the
        # window (at most one hour of them) are read raw.
        from_hour = -(2**62) if since is None else math.ceil(since / HOUR)
        params: dict[str, Any] = {"since": since, "from_hour": from_hour, "name": workflow,
                                  "namespace": namespace}
        # One snapshot: the rollup and what it does not hold yet are read together.
        runs, steps_rows, runs_pending, steps_pending, *partial = await self._fetch_all(
            ["stats_runs", "stats_steps", "stats_runs_pending", "stats_steps_pending",
             *(["stats_runs_partial", "stats_steps_partial"] if since is not None else [])],
            params)
        sums = _Sums()
        for rows in (runs, runs_pending, *partial[:1]):
            sums.add_runs(rows)
        for rows in (steps_rows, steps_pending, *partial[1:]):
            sums.add_steps(rows)
        steps = sums.step_stats()
        return Stats(since=since, workflows=sums.workflow_stats(steps), steps=steps,
                     errors=sums.error_counts())
