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
from duro.workflow._approvals import Decision, approval
from duro.workflow._external import ExternalWorkflowHandle, external_workflow
from duro.workflow._features import (
    ParentClosePolicy,
    all_handlers_finished,
    close_stream,
    continue_as_new,
    execute_child,
    on_query,
    on_signal,
    on_update,
    set_state,
    upsert_search_attributes,
    wait_condition,
    wait_for_signal,
)
from duro.workflow._saga import Saga

__all__ = [
    "Decision",
    "ExternalWorkflowHandle",
    "ParentClosePolicy",
    "Saga",
    "Workflow",
    "WorkflowInfo",
    "all_handlers_finished",
    "approval",
    "close_stream",
    "continue_as_new",
    "execute_child",
    "external_workflow",
    "in_workflow",
    "info",
    "lookup_workflow",
    "now",
    "on_query",
    "on_signal",
    "on_update",
    "patched",
    "random",
    "registered_workflows",
    "set_state",
    "sleep",
    "upsert_search_attributes",
    "uuid4",
    "wait_condition",
    "wait_for_signal",
    "workflow",
]
