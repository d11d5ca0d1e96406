"""``duro.record_usage``: what one LLM call inside a step spent."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from duro.errors import InvalidArgumentError
from duro.step._step import _current_step
from duro.usage._prices import price_of

__all__ = ["Usage", "record_usage"]

@dataclass(frozen=True, kw_only=True, slots=True)
class Usage:
    """What one model call spent."""

    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float | None = None
    """In US dollars; None when it was not given and no price is known for the model."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Anything else recorded with it (JSON values: provider, cached tokens, request id)."""

    @property
    def total_tokens(self) -> int:
        """``input_tokens + output_tokens``."""
        return self.input_tokens + self.output_tokens

    def to_json(self) -> dict[str, Any]:
        """The JSON form (what the step outcome's meta keeps)."""
        raw: dict[str, Any] = {"model": self.model, "input_tokens": self.input_tokens,
                               "output_tokens": self.output_tokens, "cost": self.cost}
        if self.extra:
            raw["extra"] = dict(self.extra)
        return raw

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> Usage:
        """Back from :meth:`to_json` (lenient: a damaged field reads as zero/unknown)."""
        cost = raw.get("cost")
        extra = raw.get("extra")
        return cls(model=str(raw.get("model") or ""),
                   input_tokens=_count(raw.get("input_tokens")),
                   output_tokens=_count(raw.get("output_tokens")),
                   cost=float(cost) if cost is not None and _finite(cost) else None,
                   extra=extra if isinstance(extra, dict) else {})


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _finite(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0)


def record_usage(*, model: str, input_tokens: int = 0, output_tokens: int = 0,
                 cost: float | None = None, **extra: Any) -> Usage:
    """Record what a model call made inside this step spent.

    The usage is stored with the step attempt's outcome, in the same write, so it is
    recorded exactly once with it (a failed attempt's usage is kept with its failure:
    the tokens were spent). It is summed per run by ``handle.usage()`` and per workflow
    and step by ``duro stats``. Call it once per model call; a step may call it several
    times. Outside a step run by a workflow (a unit test calling the function), the
    record is made and returned but stored nowhere.

    Args:
        model: The model's name, e.g. ``"gpt-4o-mini"``.
        input_tokens: Prompt tokens.
        output_tokens: Completion tokens.
        cost: What the call cost in US dollars. When None, it is computed from the
            prices set by :func:`duro.set_model_prices`, else from the ``genai-prices``
            package if installed (``pip install 'duro[prices]'``; give
            ``provider="openai"`` etc. in ``extra`` to help it), else left unknown.
            Computed once, here: the history keeps the price of the day.
        **extra: JSON values kept with it (e.g. ``provider``, ``cached_tokens``).

    Returns:
        The :class:`Usage` recorded.

    Raises:
        InvalidArgumentError: A field is missing, negative, of the wrong type, or
            ``extra`` is not JSON.
    """
    if not isinstance(model, str) or not model:
        raise InvalidArgumentError(f"model must be a non-empty string, not {model!r}")
    for name, value in (("input_tokens", input_tokens), ("output_tokens", output_tokens)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidArgumentError(f"{name} must be an int >= 0, not {value!r}")
    if cost is not None and not _finite(cost):
        raise InvalidArgumentError(f"cost must be a finite number >= 0 (US dollars) or "
                                   f"None, not {cost!r}")
    if extra:
        try:
            orjson.dumps(extra)
        except TypeError as exc:
            raise InvalidArgumentError(f"usage extras must be JSON values: {exc}") from None
    if cost is None:
        provider = extra.get("provider")
        cost = price_of(model, input_tokens, output_tokens,
                        provider if isinstance(provider, str) else None)
    usage = Usage(model=model, input_tokens=input_tokens, output_tokens=output_tokens,
                  cost=None if cost is None else float(cost), extra=extra)
    info = _current_step.get()
    if info is not None:
        info._record_usage(usage.to_json())
    return usage
