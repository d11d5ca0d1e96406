"""duro: durable execution for Python.

Workflows are ordinary ``async`` functions; duro records every step's result, timer
and message in an append-only history, so a run survives crashes and resumes where it
stopped, on any worker.
"""

from __future__ import annotations

from duro._clock import Clock, ManualClock, SystemClock
from duro.client import Engine, Event, RunInfo, StepSummary, WorkflowHandle
from duro.errors import (
    DatabaseLockedError,
    DatabaseReadOnlyError,
    DuroError,
    ErrorInfo,
    NondeterminismError,
    NonRetryableError,
    PayloadDecodeError,
    RetryAfterError,
    RunNotFoundError,
    SerializationError,
    StepFailedError,
    StepTimeoutError,
    StoreError,
    WorkflowAlreadyStartedError,
    WorkflowBlockingError,
    WorkflowCancelledError,
    WorkflowFailedError,
    WorkflowNotFoundError,
    WorkflowTerminatedError,
)
from duro.step import RetryPolicy, Step, StepInfo, heartbeat, step, step_info
from duro.store import RunStatus
from duro.workflow import (
    Workflow,
    WorkflowInfo,
    info,
    now,
    patched,
    random,
    sleep,
    uuid4,
    workflow,
)

__version__ = "0.1.0"

__all__ = [
    "Clock",
    "DatabaseLockedError",
    "DatabaseReadOnlyError",
    "DuroError",
    "Engine",
    "ErrorInfo",
    "Event",
    "ManualClock",
    "NonRetryableError",
    "NondeterminismError",
    "PayloadDecodeError",
    "RetryAfterError",
    "RetryPolicy",
    "RunInfo",
    "RunNotFoundError",
    "RunStatus",
    "SerializationError",
    "Step",
    "StepFailedError",
    "StepInfo",
    "StepSummary",
    "StepTimeoutError",
    "StoreError",
    "SystemClock",
    "Workflow",
    "WorkflowAlreadyStartedError",
    "WorkflowBlockingError",
    "WorkflowCancelledError",
    "WorkflowFailedError",
    "WorkflowHandle",
    "WorkflowInfo",
    "WorkflowNotFoundError",
    "WorkflowTerminatedError",
    "__version__",
    "heartbeat",
    "info",
    "now",
    "patched",
    "random",
    "sleep",
    "step",
    "step_info",
    "uuid4",
    "workflow",
]
