"""Steps: declaration, retry policies, step-side API."""

from __future__ import annotations

from duro.step._cache import Cache
from duro.step._policy import RetryPolicy
from duro.step._step import (
    Step,
    StepInfo,
    complete_later,
    heartbeat,
    register_steps,
    step,
    step_info,
    stream,
)

__all__ = ["Cache", "RetryPolicy", "Step", "StepInfo", "complete_later", "heartbeat",
           "register_steps", "step", "step_info", "stream"]
