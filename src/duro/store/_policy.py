"""Store decisions that do not depend on the database dialect."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import orjson

from duro.errors import WorkflowAlreadyStartedError
from duro.store._records import (
    LIVE_STATUSES,
    IdConflictPolicy,
    IdReusePolicy,
    Message,
    RunRecord,
    RunStatus,
)

__all__ = ["CARRIED_KINDS", "carried_over", "check_existing"]

#: Inbox messages that follow a run into its successor at continue-as-new. A child's end
#: and a step task's outcome concern operations of the old run only.
CARRIED_KINDS = frozenset({"signal", "update", "cancel"})


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


def carried_over(carry: Sequence[Message],
                 inbox: Iterable[tuple[str, str | None, bytes | None]]) -> list[Message]:
    """What a successor's inbox gets at continue-as-new, in order: the messages the old
    run recorded but never took (``carry``, oldest first), then what was still waiting
    in its inbox (``(kind, name, data)`` rows in arrival order), of the carried kinds."""
    out = list(carry)
    for kind, name, data in inbox:
        if kind not in CARRIED_KINDS:
            continue
        update_id = None
        if kind == "update":
            update_id = str(orjson.loads(data).get("update_id")) if data else None
        out.append(Message(kind=kind, name=name, data=data, update_id=update_id))
    return out
