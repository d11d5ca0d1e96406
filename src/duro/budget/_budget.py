"""``duro.Budget``: a spend limit the engine enforces before each budgeted step attempt.

A budget is either the run's own (no ``key``: the run's spend is the usage recorded in
its history) or shared by every run that names the same ``key`` (a tenant, a user),
optionally per ``period`` (windows aligned to the Unix epoch in UTC: a one-day period
is each UTC day). Shared spend lives in the store's ``budget_spend`` table, written with
the step outcomes that spend it (``docs/agents.md``, "Budgets").
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from duro._checks import check_id, shown
from duro.errors import InvalidArgumentError

__all__ = ["ON_EXCEEDED", "Budget", "budgets_from_json", "budgets_of", "with_budget"]

ON_EXCEEDED = ("raise", "pause")
"""What a budgeted step does when its budget is spent: raise
:class:`duro.BudgetExceededError` at the workflow's ``await``, or wait (the run
suspended) until the budget is raised."""

_MAX_BUDGETS = 16
"""Most budgets one run carries: each is checked before every budgeted attempt."""


def check_usd(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(f"Budget usd must be a finite number > 0 (US dollars), "
                                   f"not {shown(value)}")
    return float(value)


def check_tokens(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidArgumentError(f"Budget tokens must be an int > 0, not {shown(value)}")
    return value


def _period(value: object) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) \
            or not math.isfinite(seconds) or seconds < 1:
        raise InvalidArgumentError(f"Budget period must be a timedelta or a number of "
                                   f"seconds >= 1, not {shown(value)}")
    return float(seconds)


@dataclass(frozen=True, kw_only=True, slots=True)
class Budget:
    """A spend limit: US dollars, tokens (input + output), or both.

    Without ``key`` it is the run's own: the usage recorded in the run's history
    counts. With ``key`` (e.g. ``f"tenant:{tenant}"``) it is shared by every run of the
    namespace that names that key, over ``period`` (e.g. ``timedelta(days=1)``: each UTC
    day from midnight) or forever. It is checked before each attempt of a step declared
    ``@duro.step(budgeted=True)``; usage recorded by other steps counts but is not
    checked before them.

    Args:
        usd: The limit in US dollars (``duro.record_usage`` costs).
        tokens: The limit in tokens (input + output).
        key: Share the budget between the runs that name this key.
        period: With ``key``: the window the limit applies to (a timedelta or seconds,
            at least one second; windows are aligned to the Unix epoch in UTC).
        on_exceeded: ``"raise"``: the step's ``await`` raises
            :class:`duro.BudgetExceededError` (catchable, recorded in the history);
            ``"pause"``: the run waits, suspended, until the budget is raised
            (``handle.set_budget``, ``client.budgets.raise_limit``).

    Raises:
        InvalidArgumentError: No limit, a limit that is not a finite positive number (an
            int for tokens), a bad key, a period without a key or under a second, an
            unknown ``on_exceeded``.
    """

    usd: float | None = None
    tokens: int | None = None
    key: str | None = None
    period: float | timedelta | None = None
    """The window's length: a timedelta or seconds, kept as seconds (a float)."""
    on_exceeded: Literal["raise", "pause"] = "raise"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "usd", check_usd(self.usd))
        set_(self, "tokens", check_tokens(self.tokens))
        if self.usd is None and self.tokens is None:
            raise InvalidArgumentError("a Budget needs a limit: usd=, tokens= or both")
        if self.key is not None:
            check_id(self.key, "budget key", limit=200)
        set_(self, "period", _period(self.period))
        if self.period is not None and self.key is None:
            raise InvalidArgumentError("a Budget with a period must have a key (a run's "
                                       "own budget covers the whole run)")
        if self.on_exceeded not in ON_EXCEEDED:
            raise InvalidArgumentError(f"on_exceeded must be one of {', '.join(ON_EXCEEDED)}, "
                                       f"not {shown(self.on_exceeded)}")

    @property
    def name(self) -> str:
        """How messages and listings name it: its key, or ``"run"``."""
        return self.key if self.key is not None else "run"

    @property
    def seconds(self) -> float | None:
        """:attr:`period` in seconds (None: no period)."""
        period = self.period
        return period.total_seconds() if isinstance(period, timedelta) else period

    def window(self, now: float) -> float:
        """The start of the window ``now`` falls in (0.0 without a period)."""
        seconds = self.seconds
        if seconds is None:
            return 0.0
        return math.floor(now / seconds) * seconds

    def to_json(self) -> dict[str, Any]:
        """The JSON form (in the ``run_started`` event's meta)."""
        raw: dict[str, Any] = {"usd": self.usd, "tokens": self.tokens}
        if self.key is not None:
            raw["key"] = self.key
        if self.period is not None:
            raw["period"] = self.seconds
        if self.on_exceeded != "raise":
            raw["on_exceeded"] = self.on_exceeded
        return raw

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Budget:
        """Back from :meth:`to_json` (raises InvalidArgumentError on a bad record)."""
        return cls(usd=raw.get("usd"), tokens=raw.get("tokens"), key=raw.get("key"),
                   period=raw.get("period"), on_exceeded=raw.get("on_exceeded", "raise"))


def budgets_of(value: object, what: str = "budget") -> tuple[Budget, ...]:
    """The budgets a caller gave (one, a list, or None), checked.

    Raises:
        InvalidArgumentError: Not a Budget or a list of them, too many, or two of the
            same key (or two run budgets).
    """
    if value is None:
        return ()
    given: Sequence[object] = [value] if isinstance(value, Budget) else \
        list(value) if isinstance(value, list | tuple) else [value]
    items: list[Budget] = []
    for item in given:
        if not isinstance(item, Budget):
            raise InvalidArgumentError(f"{what} must be a duro.Budget or a list of them, "
                                       f"not {shown(item)}")
        items.append(item)
    if len(items) > _MAX_BUDGETS:
        raise InvalidArgumentError(f"at most {_MAX_BUDGETS} budgets per run, not {len(items)}")
    names = [b.name for b in items]
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"two budgets of the same key (or two run budgets): "
                                   f"{', '.join(names)}")
    return tuple(items)


def budgets_from_json(raw: object) -> tuple[Budget, ...]:
    """A run's budgets from their JSON form (none if damaged)."""
    if not isinstance(raw, list):
        return ()
    out = []
    for item in raw:
        if isinstance(item, dict):
            try:
                out.append(Budget.from_json(item))
            except InvalidArgumentError:
                continue
    return tuple(out)


def with_budget(budgets: tuple[Budget, ...], new: Budget) -> tuple[Budget, ...]:
    """``budgets`` with ``new`` in place of the one of its name (or added)."""
    kept = tuple(b for b in budgets if b.name != new.name)
    return (*kept, new)
