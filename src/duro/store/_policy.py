"""Store decisions that do not depend on the database dialect."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import orjson

from duro.errors import WorkflowAlreadyStartedError, WorkflowIdTakenError
from duro.store._records import (
    LIVE_STATUSES,
    IdConflictPolicy,
    IdReusePolicy,
    Message,
    NewEvent,
    RunRecord,
    RunStatus,
)

__all__ = ["CARRIED_KINDS", "PARENT_CLOSED", "TOO_DEEP", "carried_over", "check_existing",
           "child_done", "child_not_started", "child_started", "too_deep"]

#: Inbox messages that follow a run into its successor at continue-as-new. A child's end
#: and a step task's outcome concern operations of the old run only.
CARRIED_KINDS = frozenset({"signal", "update", "cancel"})


def check_existing(existing: RunRecord, workflow_id: str, workflow_name: str,
                   on_conflict: IdConflictPolicy,
                   on_reuse: IdReusePolicy) -> tuple[RunRecord, bool]:
    """What a start of ``workflow_name`` finding a run with its workflow id does: (the run
    to return, whether a new run may be created).

    Raises:
        WorkflowIdTakenError: The run is of another workflow, and the start would return
            it (or fail): a handle to (or a message for) a run of other code.
        WorkflowAlreadyStartedError: The policy says fail.
    """
    if existing.status.value in LIVE_STATUSES:
        if on_conflict == "fail" or existing.workflow_name != workflow_name:
            _refuse(existing, workflow_id, workflow_name, "already has a live run "
                    f"({existing.run_id}, {existing.status.value})")
        return existing, False
    reuse = on_reuse == "allow" or (
        on_reuse == "allow_failed" and existing.status != RunStatus.COMPLETED)
    if not reuse:
        if on_reuse == "use_existing" and existing.workflow_name == workflow_name:
            return existing, False
        _refuse(existing, workflow_id, workflow_name,
                f"was already used by run {existing.run_id} ({existing.status.value}) and "
                f"the reuse policy is {on_reuse!r}")
    return existing, True


def _refuse(existing: RunRecord, workflow_id: str, workflow_name: str, why: str) -> None:
    ids = {"workflow_id": workflow_id, "run_id": existing.run_id,
           "workflow_name": existing.workflow_name}
    if existing.workflow_name != workflow_name:
        raise WorkflowIdTakenError(
            f"workflow id {workflow_id!r} belongs to a run of workflow "
            f"{existing.workflow_name!r}, not {workflow_name!r} ({existing.run_id}, "
            f"{existing.status.value}); use another id", **ids)
    raise WorkflowAlreadyStartedError(f"workflow id {workflow_id!r} {why}", **ids)


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

TOO_DEEP = "MaxChildDepthExceeded"
"""The error type recorded for a child refused by the nesting limit."""


def too_deep(depth: int, max_depth: int | None, op: int, workflow_id: str, name: str,
             now: float) -> NewEvent | None:
    """The parent's record of a child refused for nesting ``depth`` deep (its parent's
    depth + 1) past ``max_depth``, or None when it may start.

    The limit stops runaway recursion (a workflow that starts itself as a child would
    otherwise create runs without end, thousands a second)."""
    if max_depth is None or depth <= max_depth:
        return None
    return child_not_started(
        op, name, TOO_DEEP,
        f"child workflow {workflow_id!r} ({name}) would be nested {depth} deep, past the "
        f"limit of {max_depth} (the worker's max_child_depth; runaway recursion?)", now)


def child_started(op: int, name: str, workflow_id: str, run_id: str, now: float) -> NewEvent:
    """The parent's record of a child it started."""
    return NewEvent(kind="child_started", ts=now, op=op, name=name,
                    data=orjson.dumps({"workflow_id": workflow_id, "run_id": run_id}))


def child_not_started(op: int, name: str, error: str | Exception, message: str,
                      now: float) -> NewEvent:
    """The parent's record of a child that could not be started (its id is taken, it
    would nest too deep, the database refused it): ``child_failed`` at the same op, so
    the parent's history has no gap and replays the same way. ``error``: its type name,
    or the exception that says why."""
    error_type = error if isinstance(error, str) else type(error).__name__
    return NewEvent(kind="child_failed", ts=now, op=op, name=name,
                    data=orjson.dumps({"type": error_type, "message": message,
                                       "traceback": ""}),
                    meta=orjson.dumps({"status": "not_started"}))


PARENT_CLOSED = orjson.dumps({"type": "Terminated", "message": "parent run closed",
                              "traceback": ""})
"""The error recorded for a child terminated by its parent's close policy."""


def child_done(run_id: str, parent_op: int, status: str, result: bytes | None,
               error: bytes | None) -> Message:
    """The message that tells a live parent its child ended (the child's outcome)."""
    payload = orjson.dumps({
        "status": status, "run_id": run_id,
        "result": orjson.Fragment(result) if result is not None else None,
        "error": orjson.Fragment(error) if error is not None else None,
    })
    return Message(kind="child_done", name=str(parent_op), data=payload)
