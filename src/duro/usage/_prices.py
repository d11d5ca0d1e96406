"""What a model's tokens cost: a price table the application sets, then the
``genai-prices`` package (extra ``duro[prices]``) when it is installed."""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from duro.errors import InvalidArgumentError

__all__ = ["ModelPrice", "price_of", "set_model_prices"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ModelPrice:
    """A model's price, in US dollars per million tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def __post_init__(self) -> None:
        for name in ("input_per_mtok", "output_per_mtok"):
            value = getattr(self, name)
            if (isinstance(value, bool) or not isinstance(value, int | float)
                    or not math.isfinite(value) or value < 0):
                raise InvalidArgumentError(f"ModelPrice.{name} must be a finite number "
                                           f">= 0, not {value!r}")

    def cost(self, input_tokens: int, output_tokens: int) -> float:
        """The cost in dollars of that many tokens."""
        return (input_tokens * self.input_per_mtok
                + output_tokens * self.output_per_mtok) / 1_000_000


_table: dict[str, ModelPrice] = {}
_lock = threading.Lock()


def set_model_prices(prices: Mapping[str, ModelPrice]) -> None:
    """Set the price of models by name, for ``duro.record_usage`` calls that give no
    ``cost``. These win over the ``genai-prices`` table; a later call for the same
    model replaces its price.

    Args:
        prices: Model name → :class:`ModelPrice`.

    Raises:
        InvalidArgumentError: A name is not a non-empty string, or a price not a
            :class:`ModelPrice`.
    """
    if not isinstance(prices, Mapping):
        raise InvalidArgumentError(f"prices must be a mapping of model name to "
                                   f"duro.ModelPrice, not {prices!r}")
    for model, price in prices.items():
        if not isinstance(model, str) or not model:
            raise InvalidArgumentError(f"a model name must be a non-empty string, "
                                       f"not {model!r}")
        if not isinstance(price, ModelPrice):
            raise InvalidArgumentError(f"the price of {model!r} must be a duro.ModelPrice, "
                                       f"not {price!r}")
    with _lock:
        _table.update(prices)


_genai: Any = None
_genai_missing = False


def _genai_prices() -> Any:
    """The ``genai_prices`` module, or None when it is not installed (imported on the
    first call that needs it: it brings pydantic)."""
    global _genai, _genai_missing
    if _genai is None and not _genai_missing:
        try:
            import genai_prices
        except ImportError:
            _genai_missing = True
        else:
            _genai = genai_prices
    return _genai


def price_of(model: str, input_tokens: int, output_tokens: int,
             provider: str | None = None) -> float | None:
    """The cost in dollars of a call, or None when no price is known for ``model``."""
    price = _table.get(model)
    if price is not None:
        return price.cost(input_tokens, output_tokens)
    genai = _genai_prices()
    if genai is None:
        return None
    try:
        calc = genai.calc_price(
            genai.Usage(input_tokens=input_tokens, output_tokens=output_tokens),
            model_ref=model, provider_id=provider)
    except LookupError:
        return None
    return float(calc.total_price)
