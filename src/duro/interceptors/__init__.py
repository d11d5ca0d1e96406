"""Interceptors: hooks around what clients and workers do, and the headers that carry
context (trace ids, tenant, principal) from a client into runs, their steps, children
and messages.

See docs/interceptors.md.
"""

from __future__ import annotations

from duro.interceptors._client import (
    CancelInput,
    ClientInterceptor,
    QueryInput,
    SignalInput,
    StartInput,
    TerminateInput,
    UpdateInput,
)
from duro.interceptors._worker import (
    EventsRecordedInput,
    ExecuteStepInput,
    ExecuteWorkflowInput,
    HandleQueryInput,
    HandleSignalInput,
    HandleUpdateInput,
    ScheduleFiredInput,
    WorkerInterceptor,
)

__all__ = [
    "CancelInput",
    "ClientInterceptor",
    "EventsRecordedInput",
    "ExecuteStepInput",
    "ExecuteWorkflowInput",
    "HandleQueryInput",
    "HandleSignalInput",
    "HandleUpdateInput",
    "QueryInput",
    "ScheduleFiredInput",
    "SignalInput",
    "StartInput",
    "TerminateInput",
    "UpdateInput",
    "WorkerInterceptor",
]
