"""The callee's side of ``duro.call``: an exposed operation as a run of its own.

``POST /v1/operations/{name}`` starts the wrapper workflow ``duro.operation`` under the
workflow id derived from the operation id (``operation_workflow_id``): the same id again
is the same run, so a caller's retried start never runs the operation twice. The wrapper
runs the exposed workflow as its child, turns how it ended into the operation's outcome
(its result, or its error with type, message and traceback), and with a callback posts
the outcome, signed, to the caller (a step: retried with a growing delay, for about ten
minutes; the caller's polling covers a callback that never gets through). The outcome is
the wrapper's result, which ``GET /v1/operations/{name}/{id}`` reads.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from duro.client._records import RunInfo
from duro.errors import ChildWorkflowError, NonRetryableError, StepFailedError
from duro.rpc._endpoint import CALLBACK_SIGNATURE_HEADER, sign
from duro.rpc._http import shared_client
from duro.rpc._state import OperationState
from duro.serde import encode
from duro.step._policy import RetryPolicy
from duro.step._step import Step
from duro.store import RunStatus
from duro.workflow._api import info, workflow
from duro.workflow._features import execute_child

__all__ = ["OPERATION_WORKFLOW", "child_workflow_id", "operation_state"]

OPERATION_WORKFLOW = "duro.operation"
"""The wrapper workflow's name."""


async def _deliver(callback: dict[str, str], operation_id: str, outcome: dict[str, Any],
                   operation: str | None = None) -> None:
    """Post the outcome to the caller's ``/v1/callbacks``, signed with the call's key.

    A 4xx but 408/429 is final (the caller refuses: a signature it no longer accepts, a
    run that ended): polling, or nothing, takes over."""
    fields: dict[str, Any] = {"operation_id": operation_id,
                              "workflow_id": callback["workflow_id"],
                              "namespace": callback["namespace"], "outcome": outcome}
    if operation is not None:  # None: a delivery recorded by an earlier version (replayed)
        fields["operation"] = operation
    body = encode(fields)
    headers = {"Content-Type": "application/json",
               CALLBACK_SIGNATURE_HEADER: sign(bytes.fromhex(callback["key"]), body)}
    response = await shared_client().post(callback["url"], content=body, headers=headers,
                                          timeout=10.0)
    if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
        raise NonRetryableError(f"the caller refused the callback: HTTP "
                                f"{response.status_code} {response.text[:200]}")
    if response.status_code >= 300:
        raise RuntimeError(f"the caller answered HTTP {response.status_code}")


DELIVER: Step[..., None] = Step(_deliver, name="duro.operation.callback",
               retry=RetryPolicy(max_attempts=20, initial_interval=0.5, max_interval=60.0))


@workflow(name=OPERATION_WORKFLOW)
async def _operation(operation: str, operation_id: str, args: list[Any],
                     kwargs: dict[str, Any], callback: dict[str, str] | None = None,
                     *, cancelled_before_start: bool = False) -> dict[str, Any]:
    """Run the exposed workflow as this run's child; deliver its outcome.

    ``cancelled_before_start``: the run records a cancel that came before any start of
    the operation (:meth:`~duro.client.Operations.cancel`); it ends cancelled at once,
    and a start still on its way then finds it ended and runs nothing."""
    if cancelled_before_start:
        raise asyncio.CancelledError("cancelled before it was started")
    try:
        result = await execute_child(operation, *args,
                                     id=child_workflow_id(info().workflow_id), **kwargs)
        outcome: dict[str, Any] = {"status": "completed", "result": result}
    except ChildWorkflowError as exc:
        cause = exc.cause
        outcome = {"status": "failed" if exc.status == "not_started" else exc.status,
                   "error": None if cause is None else cause.to_dict()}
    except asyncio.CancelledError:
        # Cancelled (the caller asked): the exposed workflow's run is cancelled with this
        # one; a caller outside any workflow learns it by its callback too.
        if callback:
            with contextlib.suppress(StepFailedError):
                await DELIVER(callback, operation_id, {"status": "cancelled", "error": None},
                              operation)
        raise
    if callback:
        with contextlib.suppress(StepFailedError):  # the caller polls
            await DELIVER(callback, operation_id, outcome, operation)
    return outcome


def child_workflow_id(workflow_id: str) -> str:
    """The workflow id of the exposed workflow's run under an operation's wrapper run."""
    return f"{workflow_id}/run"


def operation_state(operation_id: str, wrapper: RunInfo, child: RunInfo | None,
                    ) -> OperationState:
    """What ``GET /v1/operations/{name}/{id}`` answers: ``running``, or the outcome.

    Read from the exposed workflow's own run, so the outcome is there as soon as it ends,
    while the wrapper may still be delivering the callback; from the wrapper's when it
    ended without one (the exposed workflow could not be started) or was cancelled or
    terminated (its callback says so at once, while the child's cancellation follows)."""
    run = child if child is not None else wrapper
    if wrapper.status in (RunStatus.CANCELLED, RunStatus.TERMINATED):
        run = wrapper  # the operation as a whole: its child follows (or has ended)
    if not run.status.is_terminal or (child is None and run.status == RunStatus.COMPLETED):
        return OperationState(operation_id=operation_id, status="running")
    if run.status == RunStatus.COMPLETED:
        return OperationState(operation_id=operation_id, status="completed",
                              result=run.result_json)
    return OperationState(operation_id=operation_id, status=str(run.status.value),
                          error=run.error)
