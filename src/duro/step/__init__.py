"""Steps: declaration, retry policies, step-side API."""

from __future__ import annotations

from duro.step._policy import RetryPolicy
from duro.step._step import Step, StepInfo, heartbeat, step, step_info, stream

__all__ = ["RetryPolicy", "Step", "StepInfo", "heartbeat", "step", "step_info", "stream"]
