"""The client side: Client (the store only), Engine (a client with a worker),
RemoteClient (through a server), handles, read models."""

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
from duro.client._remote import RemoteClient

__all__ = ["Client", "Engine", "Event", "RemoteClient", "RunInfo", "RunPage", "StepSummary",
           "WorkerInfo", "WorkflowHandle", "summarize_steps"]
