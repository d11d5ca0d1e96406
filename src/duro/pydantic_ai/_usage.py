"""A model response's usage, into ``duro.record_usage`` (inside the model step)."""

from __future__ import annotations

from typing import Any

import duro

__all__ = ["record_response_usage"]


def record_response_usage(payload: Any) -> None:
    """Record the usage of a model response in its JSON form (what the step returns).

    Called in the step, after the request: the usage goes with the attempt's outcome.
    A response that says nothing of its usage (a test model may not) records a call
    with zero tokens, so the call is still counted.
    """
    if not isinstance(payload, dict):
        return
    usage = payload.get("usage") or {}
    extra: dict[str, Any] = {}
    provider = payload.get("provider_name")
    if isinstance(provider, str) and provider:
        extra["provider"] = provider
    for key in ("cache_read_tokens", "cache_write_tokens"):
        if usage.get(key):
            extra[key] = usage[key]
    duro.record_usage(model=payload.get("model_name") or "unknown",
                      input_tokens=int(usage.get("input_tokens") or 0),
                      output_tokens=int(usage.get("output_tokens") or 0), **extra)
