"""One model call's usage as the agent integrations record it (``duro.openai``,
``duro.openai_agents``, ``duro.pydantic_ai``): the same names for the same figures and
the same fallback for odd ones, whichever SDK reported them.

The figures, by the name they are recorded under (extras only when non-zero):

- ``input_tokens`` / ``output_tokens``: prompt and completion tokens.
- ``cached_tokens``: the prompt tokens read from the provider's prompt cache (part of
  ``input_tokens``): OpenAI's ``prompt_tokens_details.cached_tokens``, the Agents SDK's
  ``input_tokens_details.cached_tokens``, pydantic-ai's ``cache_read_tokens``.
- ``cache_write_tokens``: the prompt tokens written to the cache (Anthropic's, through
  pydantic-ai or the Agents SDK).
- ``reasoning_tokens``: the completion tokens spent reasoning.
- ``provider``, ``response_model`` (the model that answered, when it is named otherwise
  than asked), ``request_id`` (the provider's id of the response).

The fallback: a provider's odd figure (a negative or non-integer count, a cost that is
not a finite number >= 0) must not fail a step whose reply arrived, so it is dropped (a
count reads as 0, a cost as unknown and is then priced) and the call is still counted.
"""

from __future__ import annotations

import math
from typing import Any

from duro.usage._record import Usage, record_usage

__all__ = ["record_model_call"]

UNKNOWN_MODEL = "unknown"
"""The model recorded when the SDK names none."""


def record_model_call(*, model: object, input_tokens: object = 0, output_tokens: object = 0,
                      cached_tokens: object = 0, cache_write_tokens: object = 0,
                      reasoning_tokens: object = 0, cost: object = None,
                      provider: object = None, response_model: object = None,
                      request_id: object = None) -> Usage:
    """Record one model call's usage with :func:`duro.record_usage` (see the module).

    Returns:
        The :class:`Usage` recorded.
    """
    name = model if isinstance(model, str) and model else UNKNOWN_MODEL
    extra: dict[str, Any] = {}
    if _text(provider):
        extra["provider"] = provider
    if _text(response_model) and response_model != name:
        extra["response_model"] = response_model
    for key, value in (("cached_tokens", cached_tokens),
                       ("cache_write_tokens", cache_write_tokens),
                       ("reasoning_tokens", reasoning_tokens)):
        if _count(value):
            extra[key] = _count(value)
    if _text(request_id):
        extra["request_id"] = request_id
    return record_usage(model=name, input_tokens=_count(input_tokens),
                        output_tokens=_count(output_tokens), cost=_cost(cost), **extra)


def _text(value: object) -> bool:
    return isinstance(value, str) and bool(value)


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _cost(value: object) -> float | None:
    if (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0):
        return float(value)
    return None
