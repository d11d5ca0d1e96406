"""The client side: Client (the store only), Engine (a client with a worker),
RemoteClient (through a server), handles, read models."""

from __future__ import annotations

from duro._stats import ErrorCount, Percentiles, Stats, StepStats, WorkflowStats
from duro.client._client import Client
from duro.client._engine import Engine
from duro.client._handle import WorkflowHandle
from duro.client._records import (
    Event,
    RunInfo,
    RunPage,
    StepSummary,
    StreamChunk,
    WorkerInfo,
    summarize_steps,
)
from duro.client._remote import RemoteClient

__all__ = ["Client", "Engine", "ErrorCount", "Event", "Percentiles", "RemoteClient", "RunInfo",
           "RunPage", "Stats", "StepStats", "StepSummary", "StreamChunk", "WorkerInfo",
           "WorkflowHandle", "WorkflowStats", "summarize_steps"]
