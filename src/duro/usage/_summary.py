"""A run's usage summed from its history: what ``handle.usage()`` returns."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from duro._history import STEP_KINDS, usage_of
from duro._usage import UsageTotals
from duro.usage._record import Usage

__all__ = ["RunUsage", "sum_usage"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RunUsage:
    """What a run's model calls spent (``handle.usage()``), from its history: every
    step attempt's recorded usage, failed attempts included (their tokens were spent).
    A cache hit records none."""

    total: UsageTotals = field(default_factory=UsageTotals)
    by_model: Mapping[str, UsageTotals] = field(default_factory=dict)
    by_step: Mapping[str, UsageTotals] = field(default_factory=dict)

    @property
    def cost(self) -> float:
        """The run's cost in US dollars (calls of known cost)."""
        return self.total.cost

    @property
    def total_tokens(self) -> int:
        """Input and output tokens of every call."""
        return self.total.total_tokens

    def to_json(self) -> dict[str, Any]:
        """The JSON form (``GET /v1/runs/{id}/usage``)."""
        return {"total": self.total.to_json(),
                "by_model": {k: v.to_json() for k, v in self.by_model.items()},
                "by_step": {k: v.to_json() for k, v in self.by_step.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunUsage:
        """Back from :meth:`to_json`."""
        return cls(total=UsageTotals.from_json(data.get("total") or {}),
                   by_model={k: UsageTotals.from_json(v)
                             for k, v in (data.get("by_model") or {}).items()},
                   by_step={k: UsageTotals.from_json(v)
                            for k, v in (data.get("by_step") or {}).items()})


def sum_usage(events: Iterable[tuple[str, str | None, bytes | None]]) -> RunUsage:
    """The usage of a history given as ``(kind, name, meta)`` of each event."""
    total = UsageTotals()
    by_model: dict[str, UsageTotals] = {}
    by_step: dict[str, UsageTotals] = {}
    for kind, name, meta in events:
        if kind not in STEP_KINDS or not meta or b'"usage"' not in meta:
            continue
        raw = orjson.loads(meta)
        for item in usage_of(raw) if isinstance(raw, dict) else ():
            usage = Usage.from_json(item)
            total = total.plus(usage)
            by_model[usage.model] = by_model.get(usage.model, UsageTotals()).plus(usage)
            step = name or ""
            by_step[step] = by_step.get(step, UsageTotals()).plus(usage)
    return RunUsage(total=total, by_model=by_model, by_step=by_step)
