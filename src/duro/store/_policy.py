"""Store decisions that do not depend on the database dialect."""

from __future__ import annotations

from duro.errors import WorkflowAlreadyStartedError
from duro.store._records import (
    LIVE_STATUSES,
    IdConflictPolicy,
    IdReusePolicy,
    RunRecord,
    RunStatus,
)

__all__ = ["check_existing"]


def check_existing(existing: RunRecord, workflow_id: str, on_conflict: IdConflictPolicy,
                   on_reuse: IdReusePolicy) -> tuple[RunRecord, bool]:
    """What a start finding a run with its workflow id does: (the run to return, whether
    a new run may be created), or WorkflowAlreadyStartedError when the policy says fail."""
    if existing.status.value in LIVE_STATUSES:
        if on_conflict == "fail":
            raise WorkflowAlreadyStartedError(
                f"workflow id {workflow_id!r} already has a live run "
                f"({existing.run_id}, {existing.status.value})",
                workflow_id=workflow_id, run_id=existing.run_id)
        return existing, False
    reuse = on_reuse == "allow" or (
        on_reuse == "allow_failed" and existing.status != RunStatus.COMPLETED)
    if not reuse:
        if on_reuse == "use_existing":
            return existing, False
        raise WorkflowAlreadyStartedError(
            f"workflow id {workflow_id!r} was already used by run {existing.run_id} "
            f"({existing.status.value}) and the reuse policy is {on_reuse!r}",
            workflow_id=workflow_id, run_id=existing.run_id)
    return existing, True
