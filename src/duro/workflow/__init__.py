"""Workflows: declaration, the deterministic loop, replay, and the workflow-side API."""

from __future__ import annotations

from duro.workflow._api import (
    Workflow,
    WorkflowInfo,
    in_workflow,
    info,
    lookup_workflow,
    now,
    patched,
    random,
    registered_workflows,
    sleep,
    uuid4,
    workflow,
)

__all__ = [
    "Workflow",
    "WorkflowInfo",
    "in_workflow",
    "info",
    "lookup_workflow",
    "now",
    "patched",
    "random",
    "registered_workflows",
    "sleep",
    "uuid4",
    "workflow",
]
