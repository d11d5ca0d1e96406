"""Store decisions that do not depend on the database dialect."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import orjson

from duro._history import (
    ChildDone,
    ChildFailedMeta,
    ChildStarted,
    EventKind,
    MessageKind,
    UpdateMeta,
)
from duro.errors import ErrorInfo, WorkflowAlreadyStartedError, WorkflowIdTakenError
from duro.store._records import (
    LIVE_STATUSES,
    IdConflictPolicy,
    IdReusePolicy,
    InboxMessage,
    Message,
    NewEvent,
    RunRecord,
    RunStatus,
)

__all__ = ["CARRIED_KINDS", "PARENT_CLOSED", "TIMED_OUT", "TOO_DEEP", "carried_over",
           "check_existing", "child_done", "child_not_started", "child_started_event",
           "terminated", "too_deep", "update_of"]

#: Inbox messages that follow a run into its successor at continue-as-new. A child's end
#: and a step task's outcome concern operations of the old run only.
CARRIED_KINDS = frozenset({MessageKind.SIGNAL, MessageKind.UPDATE, MessageKind.CANCEL})


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


def carried_over(carry: Sequence[Message], inbox: Iterable[InboxMessage]) -> list[Message]:
    """What a successor's inbox gets at continue-as-new, in order: the messages the old
    run recorded but never took (``carry``, oldest first), then what was still waiting
    in its inbox (in arrival order), of the carried kinds."""
    out = list(carry)
    for m in inbox:
        if m.kind not in CARRIED_KINDS:
            continue
        update_id = update_of(m) if m.kind == MessageKind.UPDATE else None
        out.append(Message(kind=m.kind, name=m.name, data=m.data, meta=m.meta,
                           update_id=update_id))
    return out


def update_of(message: InboxMessage) -> str:
    """An update request's id (messages stored before migration 6 kept it in data)."""
    update_id = UpdateMeta.update_id_of(message.meta)
    if update_id is None and message.data:
        update_id = str(orjson.loads(message.data).get("update_id"))
    return str(update_id)

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


def child_started_event(op: int, name: str, workflow_id: str, run_id: str,
                        now: float) -> NewEvent:
    """The parent's record of a child it started."""
    return NewEvent(kind=EventKind.CHILD_STARTED, ts=now, op=op, name=name,
                    data=ChildStarted(workflow_id=workflow_id, run_id=run_id).encode())


def child_not_started(op: int, name: str, error: str | Exception, message: str,
                      now: float) -> NewEvent:
    """The parent's record of a child that could not be started (its id is taken, it
    would nest too deep, the database refused it): ``child_failed`` at the same op, so
    the parent's history has no gap and replays the same way. ``error``: its type name,
    or the exception that says why."""
    error_type = error if isinstance(error, str) else type(error).__name__
    return NewEvent(kind=EventKind.CHILD_FAILED, ts=now, op=op, name=name,
                    data=ErrorInfo(type=error_type, message=message).to_payload(),
                    meta=ChildFailedMeta(status="not_started").encode())


def terminated(reason: str) -> bytes:
    """The error recorded for a run terminated (``reason``: by whom, why)."""
    return ErrorInfo(type="Terminated", message=reason).to_payload()


PARENT_CLOSED = terminated("parent run closed")
"""The error recorded for a child terminated by its parent's close policy."""

TIMED_OUT = ErrorInfo(type="TimeoutError",
                      message="the run's execution timeout passed").to_payload()
"""The error recorded for a run whose execution timeout passed."""


def child_done(run_id: str, parent_op: int, status: str, result: bytes | None,
               error: bytes | None) -> Message:
    """The message that tells a live parent its child ended: the child's result (or
    error) as stored, untouched."""
    return Message(kind=MessageKind.CHILD_DONE, name=str(parent_op),
                   data=result if status == "completed" else error,
                   meta=ChildDone(status=status, run_id=run_id).encode())
