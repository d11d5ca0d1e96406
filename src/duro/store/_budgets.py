"""Shared budgets in the store: what an admission asks, what the rule decides, what a
listing shows, and what a step outcome charges. Plain data and plain functions (the
rule is unit-tested without a database, ``tests/unit/test_budget_rules.py``); the
operations that apply them are ``store/_base/_budgets.py``.

The rule (:func:`budget_verdict`) admits a budgeted step attempt only if the budget can
take it: what is spent, plus what the attempts in flight reserved, plus this attempt's
estimate (the most one settled attempt of the key spent in the window), stays within the
limit. While no attempt has settled (no estimate), or when the estimate does not fit,
the attempt waits for the others in flight; when nothing else is in flight it is
admitted as long as anything is left. So the spend passes the limit by at most one
attempt's cost, however many workers and runs share the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from duro._history import STEP_KINDS, NewEvent, spend_of, usage_of

__all__ = ["ADMIT", "WAIT", "BudgetRequest", "BudgetSpend", "BudgetVerdict", "budget_verdict",
           "event_spend"]


@dataclass(frozen=True, kw_only=True, slots=True)
class BudgetRequest:
    """One shared budget an attempt must be admitted by: its key and window, its
    limits as the run gives them."""

    namespace: str
    key: str
    window: float
    period: float | None
    usd: float | None
    tokens: int | None


@dataclass(frozen=True, kw_only=True, slots=True)
class BudgetVerdict:
    """What :func:`budget_verdict` decided: ``admit`` (reserving ``reserve_usd`` and
    ``reserve_tokens``), ``wait`` (others in flight may leave room), or ``exceeded``
    (``unit``'s ``limit`` is spent: ``spent``)."""

    status: Literal["admit", "wait", "exceeded"]
    budget: str = ""
    unit: str = ""
    limit: float = 0.0
    spent: float = 0.0
    reserve_usd: float = 0.0
    reserve_tokens: int = 0


ADMIT = BudgetVerdict(status="admit")
WAIT = BudgetVerdict(status="wait")


def budget_verdict(
    budget: str, *, usd: float | None, tokens: int | None, spent_usd: float,
    spent_tokens: int, settled: int, max_usd: float, max_tokens: int, others: int,
    reserved_usd: float, reserved_tokens: int,
) -> BudgetVerdict:
    """Whether one more attempt may spend from a budget (see the module's docstring).

    Args:
        budget: Its name (a key, or ``"run"``), for the verdict.
        usd: The dollar limit (None: none).
        tokens: The token limit (None: none).
        spent_usd: Spent in the window (settled attempts).
        spent_tokens: Likewise in tokens.
        settled: Attempts settled in the window (0: no estimate yet).
        max_usd: The most one settled attempt spent: the estimate.
        max_tokens: Likewise in tokens.
        others: Other attempts in flight holding a reservation.
        reserved_usd: What they reserved.
        reserved_tokens: Likewise in tokens.
    """
    for unit, limit, spent in (("usd", usd, spent_usd), ("tokens", tokens, spent_tokens)):
        if limit is not None and spent >= limit:
            return BudgetVerdict(status="exceeded", budget=budget, unit=unit,
                                 limit=float(limit), spent=float(spent))
    if others and not settled:
        return WAIT  # no estimate: one attempt at a time until one has settled
    if others and ((usd is not None and spent_usd + reserved_usd + max_usd > usd)
                   or (tokens is not None
                       and spent_tokens + reserved_tokens + max_tokens > tokens)):
        return WAIT
    return BudgetVerdict(status="admit", budget=budget, reserve_usd=max_usd,
                         reserve_tokens=max_tokens)


def event_spend(event: NewEvent) -> tuple[float, int]:
    """:func:`spend_of` a step outcome event's usage (0 for other events)."""
    if event.kind not in STEP_KINDS or not event.meta or b'"usage"' not in event.meta:
        return 0.0, 0
    raw = orjson.loads(event.meta)
    return spend_of(usage_of(raw)) if isinstance(raw, dict) else (0.0, 0)


@dataclass(frozen=True, kw_only=True, slots=True)
class BudgetSpend:
    """A shared budget's spend in one window (``client.budgets.list()``, ``duro
    budgets``)."""

    namespace: str
    key: str
    window_start: float
    """The window's start (Unix seconds; 0 for a budget without a period)."""
    period: float | None
    spent_usd: float
    spent_tokens: int
    settled: int
    """Budgeted attempts whose spend was added (failed ones too)."""
    limit_usd: float | None
    """The limit in force: an operator's (``set_limit``), else the last run's."""
    limit_tokens: int | None
    in_flight: int
    """Attempts running now with a reservation."""
    reserved_usd: float
    updated_at: float

    def to_json(self) -> dict[str, Any]:
        """The JSON form (``GET /v1/budgets``)."""
        return {"namespace": self.namespace, "key": self.key,
                "window_start": self.window_start, "period": self.period,
                "spent_usd": self.spent_usd, "spent_tokens": self.spent_tokens,
                "settled": self.settled, "limit_usd": self.limit_usd,
                "limit_tokens": self.limit_tokens, "in_flight": self.in_flight,
                "reserved_usd": self.reserved_usd, "updated_at": self.updated_at}

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> BudgetSpend:
        """Back from :meth:`to_json`."""
        return cls(namespace=str(raw["namespace"]), key=str(raw["key"]),
                   window_start=float(raw["window_start"]), period=raw.get("period"),
                   spent_usd=float(raw["spent_usd"]), spent_tokens=int(raw["spent_tokens"]),
                   settled=int(raw["settled"]), limit_usd=raw.get("limit_usd"),
                   limit_tokens=raw.get("limit_tokens"), in_flight=int(raw["in_flight"]),
                   reserved_usd=float(raw["reserved_usd"]),
                   updated_at=float(raw["updated_at"]))
