"""The client side: Engine, handles, read models."""

from __future__ import annotations

from duro.client._engine import Engine
from duro.client._handle import WorkflowHandle
from duro.client._records import Event, RunInfo, StepSummary, summarize_steps

__all__ = ["Engine", "Event", "RunInfo", "StepSummary", "WorkflowHandle", "summarize_steps"]
