"""The client side: Client (the store only), Engine (a client with a worker), handles,
read models."""

from __future__ import annotations

from duro.client._client import Client
from duro.client._engine import Engine
from duro.client._handle import WorkflowHandle
from duro.client._records import (
    Event,
    RunInfo,
    RunPage,
    StepSummary,
    WorkerInfo,
    summarize_steps,
)

__all__ = ["Client", "Engine", "Event", "RunInfo", "RunPage", "StepSummary", "WorkerInfo",
           "WorkflowHandle", "summarize_steps"]
