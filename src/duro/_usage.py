"""Usage totals: model calls and what they spent, summed (``duro.UsageTotals``). A leaf
module (the store's analytics read model uses it, below the step API)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from duro.usage._record import Usage

__all__ = ["UsageTotals"]


@dataclass(frozen=True, kw_only=True, slots=True)
class UsageTotals:
    """Model calls and what they spent, summed."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    """In US dollars: the sum of the calls whose cost is known."""
    unpriced_calls: int = 0
    """Calls whose cost is unknown (no price for their model): not in ``cost``."""

    @property
    def total_tokens(self) -> int:
        """``input_tokens + output_tokens``."""
        return self.input_tokens + self.output_tokens

    def plus(self, usage: Usage) -> UsageTotals:
        """These totals with one more call."""
        return self.add(UsageTotals(calls=1, input_tokens=usage.input_tokens,
                                    output_tokens=usage.output_tokens,
                                    cost=usage.cost or 0.0,
                                    unpriced_calls=int(usage.cost is None)))

    def add(self, other: UsageTotals) -> UsageTotals:
        """The sum of these totals and ``other``."""
        return UsageTotals(calls=self.calls + other.calls,
                           input_tokens=self.input_tokens + other.input_tokens,
                           output_tokens=self.output_tokens + other.output_tokens,
                           cost=self.cost + other.cost,
                           unpriced_calls=self.unpriced_calls + other.unpriced_calls)

    def to_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {"calls": self.calls, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "total_tokens": self.total_tokens,
                "cost": self.cost, "unpriced_calls": self.unpriced_calls}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> UsageTotals:
        """Back from :meth:`to_json`."""
        return cls(calls=int(data.get("calls", 0)),
                   input_tokens=int(data.get("input_tokens", 0)),
                   output_tokens=int(data.get("output_tokens", 0)),
                   cost=float(data.get("cost") or 0.0),
                   unpriced_calls=int(data.get("unpriced_calls", 0)))
