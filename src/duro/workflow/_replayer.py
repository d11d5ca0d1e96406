"""Read-only replay: a recorded history fed to current workflow code, nothing executed.

The one path for every replay that must not act: ``Engine.query`` answering from the
history of a run this process does not hold, and :func:`duro.testing.replay` checking
new code against recorded histories. The instance is the same deterministic core a
worker runs (:class:`~duro.workflow._instance.RunInstance`), driven the same way
(:meth:`~duro.workflow._instance.RunInstance.replay`), with a host that executes and
records nothing; a worker replays with its own host (``worker/_held.HeldRun``) instead.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from duro._history import EventKind, EventRecord
from duro.errors import QueryError, WorkflowMismatchError
from duro.workflow._instance import NULL_HOST, RunInstance

if TYPE_CHECKING:
    from duro.interceptors import WorkerInterceptor
    from duro.workflow._api import Workflow

__all__ = ["check_workflow", "query_replayed", "replayed"]


def check_workflow(workflow: Workflow[Any, Any], history: Sequence[EventRecord], *,
                   workflow_name: str | None = None) -> None:
    """Refuse a history that another workflow recorded.

    Its ``run_started`` event names the workflow that recorded it; that name must be
    ``workflow_name`` (by default, ``workflow``'s own). A history that names none (one
    built by hand) is taken as it is.

    Raises:
        WorkflowMismatchError: The history names another workflow.
    """
    expected = workflow_name if workflow_name is not None else workflow.name
    first = history[0] if history else None
    if first is None or first.kind != EventKind.RUN_STARTED or not first.name:
        return
    if first.name != expected:
        hint = (f"replay it with that workflow's code, or pass "
                f"workflow_name={first.name!r} to replay it with this code anyway"
                if workflow_name is None else "")
        raise WorkflowMismatchError(
            f"the history was recorded by workflow {first.name!r}, not {expected!r}"
            + (f": {hint}" if hint else ""),
            recorded=first.name, given=expected)


@contextlib.contextmanager
def replayed(workflow: Workflow[Any, Any], history: Sequence[EventRecord], *, run_id: str,
             workflow_id: str, workflow_name: str | None = None,
             interceptors: Sequence[WorkerInterceptor] = (),
             context: contextvars.Context | None = None) -> Iterator[RunInstance]:
    """Replay ``history`` with ``workflow``'s current code; yield the instance where the
    history leaves it, and close it afterwards.

    Nothing runs but workflow code: steps, timers and children stay pending, events the
    code would record are dropped. A problem that would park the run is left in the
    instance's ``park_error`` for the caller to report its own way.

    Args:
        workflow: The code to replay with.
        history: The recorded events, in order (payloads decoded).
        run_id: The run's id (it seeds ``duro.random()`` and ``duro.uuid4()``).
        workflow_id: The run's workflow id.
        workflow_name: The name the history must carry (default: ``workflow``'s).
        interceptors: Worker interceptors whose deterministic hooks run in the replay.
        context: The context variables the replayed code sees (default: a copy of the
            caller's).

    Raises:
        WorkflowMismatchError: The history was recorded by another workflow.
    """
    check_workflow(workflow, history, workflow_name=workflow_name)
    inst = RunInstance(workflow=workflow, run_id=run_id, workflow_id=workflow_id,
                       host=NULL_HOST, interceptors=interceptors, context=context)
    try:
        inst.replay(history, {})
        yield inst
    finally:
        inst.close()


def query_replayed(workflow: Workflow[Any, Any], history: Sequence[EventRecord], *,
                   run_id: str, workflow_id: str, name: str, args: list[Any],
                   headers: Mapping[str, str] | None = None,
                   interceptors: Sequence[WorkerInterceptor] = (),
                   context: contextvars.Context | None = None) -> Any:
    """A query's answer from a read-only replay of ``history`` (a client that does not
    hold the run, or a worker answering a query asked through the store).

    Raises:
        QueryError: The history cannot be replayed with this code, there is no such
            handler, or it failed.
    """
    with replayed(workflow, history, run_id=run_id, workflow_id=workflow_id,
                  interceptors=interceptors, context=context) as inst:
        if inst.park_error is not None:
            raise QueryError(f"run {run_id} cannot be replayed here: {inst.park_error}")
        return inst.query(name, args, headers)
