"""A model response's usage, into ``duro.record_usage`` (inside the model step)."""

from __future__ import annotations

from typing import Any

from duro.usage._model_call import record_model_call

__all__ = ["record_response_usage"]


def record_response_usage(payload: Any) -> None:
    """Record the usage of a model response in its JSON form (what the step returns).

    Called in the step, after the request: the usage goes with the attempt's outcome.
    A response that says nothing of its usage (a test model may not) records a call
    with zero tokens, so the call is still counted. pydantic-ai's ``cache_read_tokens``
    is recorded as ``cached_tokens``, its ``details["reasoning_tokens"]`` as
    ``reasoning_tokens``: the names the other integrations use.
    """
    if not isinstance(payload, dict):
        return
    usage = payload.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    details = usage.get("details")
    details = details if isinstance(details, dict) else {}
    record_model_call(model=payload.get("model_name"),
                      input_tokens=usage.get("input_tokens", 0),
                      output_tokens=usage.get("output_tokens", 0),
                      cached_tokens=usage.get("cache_read_tokens", 0),
                      cache_write_tokens=usage.get("cache_write_tokens", 0),
                      reasoning_tokens=details.get("reasoning_tokens", 0),
                      provider=payload.get("provider_name"),
                      request_id=payload.get("provider_response_id"))
