"""Workflow-side API for messages and control flow: signals, published state, search
attributes, query and update handlers, conditions, child workflows, continue-as-new."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping
from datetime import timedelta
from typing import Any, Literal, ParamSpec, TypeVar, overload

from duro._checks import check_id, check_seconds
from duro._history import EventKind, SearchAttributesMeta, SearchValue
from duro._search import check_search_attributes, check_upsert
from duro.errors import QueryError
from duro.serde import convert
from duro.step._policy import seconds
from duro.workflow._api import Workflow, _instance, lookup_workflow
from duro.workflow._instance import ContinueAsNew, RunInstance

__all__ = [
    "ParentClosePolicy",
    "all_handlers_finished",
    "close_stream",
    "continue_as_new",
    "execute_child",
    "on_query",
    "on_signal",
    "on_update",
    "set_state",
    "stream_from_workflow",
    "upsert_search_attributes",
    "wait_condition",
    "wait_for_signal",
]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")

ParentClosePolicy = Literal["terminate", "request_cancel", "abandon"]


@overload
async def wait_for_signal(name: str, *, timeout: float | timedelta | None = None) -> Any: ...
@overload
async def wait_for_signal(name: str, *, timeout: float | timedelta | None = None,
                          type: type[T]) -> T | None: ...
@overload
async def wait_for_signal(name: str, *, timeout: float | timedelta | None = None,
                          type: type[T], default: T) -> T: ...
async def wait_for_signal(
    name: str, *, timeout: float | timedelta | None = None, type: Any = Any,
    default: Any = None,
) -> Any:
    """Wait for the next signal called ``name`` and return its payload.

    Signals that arrived earlier are buffered and returned first, in order; each is
    delivered once. With ``timeout`` (a durable timer), ``default`` is returned if none
    arrives in time.

    Args:
        name: The signal's name.
        timeout: How long to wait, at most.
        type: Convert the payload to this type (dataclass, pydantic model, ...).
        default: Returned on timeout.
    """
    mailbox = _instance("wait_for_signal").mailbox
    found, value = mailbox.take(name)
    if found:
        return convert(value, type)
    fut = mailbox.wait(name)
    took = False
    try:
        if timeout is None:
            value = await fut
        else:
            try:
                value = await asyncio.wait_for(fut, seconds(timeout))
            except TimeoutError:
                return default
        took = True
    finally:
        mailbox.done_waiting(name, fut, took=took)
    return convert(value, type)


def on_signal(name: str, handler: Callable[..., Any]) -> None:
    """Handle every signal called ``name`` as it arrives (and those buffered so far).

    The handler takes the payload (converted to its first parameter's type) and may be
    a plain function or ``async def`` (run as a task of the workflow).
    """
    _instance("on_signal").mailbox.set_handler(name, handler)


def set_state(key: str, value: Any) -> None:
    """Publish a value readable from outside (``handle.get_state(key)``) without replay.

    Recorded in the history with the run's next write.

    Raises:
        SerializationError: The value cannot be stored as JSON.
    """
    import orjson

    from duro.serde import encode

    inst = _instance("set_state")
    data = encode(value, what=f"state {key!r}")
    inst.state[key] = orjson.loads(data)
    if not inst.replaying:
        inst.record(EventKind.STATE_SET, name=key, data=data)


def stream_from_workflow(data: bytes) -> None:
    """``duro.stream(value)`` called by workflow code (``data``: the value's JSON): the
    value goes to the run's stream with the run's next write, in the transaction that
    records it (a ``stream_written`` event), so exactly once: a replay, which runs the
    call again, records nothing. Outside workflow code, nothing.

    Raises:
        QueryError: Called from a query handler or an update validator.
        RuntimeError: The run's stream is closed (``duro.close_stream()``).
    """
    from duro.workflow._api import current_instance

    inst = current_instance()
    if inst is None:
        return
    _writable_stream(inst, "write to")
    if not inst.replaying:
        inst.record(EventKind.STREAM_WRITTEN, name=None, data=data)


def close_stream() -> None:
    """Close the run's stream: readers of ``handle.stream()`` (and the HTTP stream route)
    stop after what was written so far, while the run goes on. Recorded with the run's
    next write, as :func:`duro.stream` values are; closing again does nothing.

    Raises:
        RuntimeError: Not called from workflow code.
        QueryError: Called from a query handler or an update validator.
    """
    inst = _instance("close_stream")
    if inst.stream_closed:
        return
    _writable_stream(inst, "close")
    inst.stream_closed = True
    if not inst.replaying:
        inst.record(EventKind.STREAM_CLOSED, name=None)


def _writable_stream(inst: RunInstance, what: str) -> None:
    if inst.querying:  # a query must leave no trace in the history
        raise QueryError(f"queries and update validators must not {what} the run's "
                         "stream: they read the workflow's state only")
    if inst.stream_closed:
        raise RuntimeError(f"workflow {inst.workflow.name!r} (id {inst.workflow_id}) cannot "
                           f"{what} its stream: duro.close_stream() closed it")


def upsert_search_attributes(attributes: Mapping[str, SearchValue | None]) -> None:
    """Set (or, with ``None``, remove) search attributes of this run: indexed values that
    listings filter on (``client.list(search_attributes={...})``).

    Recorded in the history with the run's next write, and indexed in the same
    transaction. Like :func:`set_state`, a replay does not record it again: the history
    keeps what the run recorded, even if the code now upserts something else (no
    ``NondeterminismError``, as for published state and ``patched()`` markers).

    Values are stored as plain text in the index (codecs do not encrypt them): keep
    secrets out.

    Raises:
        InvalidArgumentError: A key that is not an identifier of at most 64 characters,
            or a value that is not a str, int, float (finite) or bool, or None; the
            message names the key. Nothing is recorded.
        QueryError: Called from a query handler or an update validator.
    """
    inst = _instance("upsert_search_attributes")
    if inst.querying:  # a query must leave no trace in the history
        raise QueryError("queries and update validators must not upsert search attributes: "
                         "they read the workflow's state only")
    changes = check_upsert(attributes)
    if changes and not inst.replaying:
        inst.record(EventKind.SEARCH_ATTRIBUTES_UPSERTED, name=None,
                    meta=SearchAttributesMeta(attributes=changes).encode())


def on_query(name: str, handler: Callable[..., Any]) -> None:
    """Answer queries called ``name`` with ``handler(*args)``.

    A query reads the workflow's state and must not change it, run steps or wait:
    it is answered from a replay or a cached instance, and nothing is recorded.
    """
    _instance("on_query").query_handlers[name] = handler


def on_update(name: str, handler: Callable[..., Any],
              validator: Callable[..., Any] | None = None) -> None:
    """Handle updates called ``name``: request/response calls into the running workflow.

    The validator (a plain function; raise to reject) runs before anything is recorded,
    so a rejected update leaves no trace in the history. The handler may be ``async``
    and run steps; its return value is the caller's result.
    """
    _instance("on_update").mailbox.update_handlers[name] = (handler, validator)


async def wait_condition(fn: Callable[[], bool], *,
                         timeout: float | timedelta | None = None) -> bool:
    """Wait until ``fn()`` is true (re-checked after every event); False on timeout."""
    inst = _instance("wait_condition")
    if fn():
        return True
    fut: asyncio.Future[bool] = inst.loop.create_future()
    inst.conditions.append((fn, fut))
    if timeout is None:
        return await fut
    try:
        return await asyncio.wait_for(fut, seconds(timeout))
    except TimeoutError:
        return False


def all_handlers_finished() -> bool:
    """Whether every signal and update handler this run started has finished.

    A run that returns (or continues as new) while handlers still run ends without
    them: an update still running fails with ``UpdateNotHandledError``, an ``async``
    signal handler is dropped mid-way, and the worker logs a warning. Wait for them
    first::

        await duro.wait_condition(duro.all_handlers_finished)
        return result

    Raises:
        RuntimeError: Not called from workflow code.
    """
    return _instance("all_handlers_finished").mailbox.handlers_running() == 0


def continue_as_new(*args: Any, **kwargs: Any) -> None:
    """End this run and start a fresh one of the same workflow and id with new arguments.

    The new run starts with an empty history (and the published state), so a workflow
    that loops forever keeps its history small. Does not return.
    """
    _instance("continue_as_new")
    raise ContinueAsNew(args, kwargs)


@overload
def execute_child(
    workflow: Workflow[P, R], *args: Any, id: str | None = None,
    parent_close: ParentClosePolicy = "terminate",
    execution_timeout: float | timedelta | None = None,
    search_attributes: Mapping[str, SearchValue] | None = None, **kwargs: Any,
) -> Coroutine[Any, Any, R]: ...
@overload
def execute_child(
    workflow: str, *args: Any, id: str | None = None,
    parent_close: ParentClosePolicy = "terminate",
    execution_timeout: float | timedelta | None = None,
    search_attributes: Mapping[str, SearchValue] | None = None, **kwargs: Any,
) -> Coroutine[Any, Any, Any]: ...
def execute_child(
    workflow: Workflow[P, R] | str, *args: Any, id: str | None = None,
    parent_close: ParentClosePolicy = "terminate",
    execution_timeout: float | timedelta | None = None,
    search_attributes: Mapping[str, SearchValue] | None = None, **kwargs: Any,
) -> Coroutine[Any, Any, Any]:
    """Run a child workflow and wait for its result (``await execute_child(wf, x)``).

    Calling a workflow from a workflow (``await wf(x)``) does the same with defaults.

    Args:
        workflow: The child workflow, or its registered name (the workflow must be
            imported in this process: its signature checks the arguments).
        id: The child's workflow id; defaults to one derived from the parent and the
            operation's sequence number (deterministic).
        parent_close: What happens to the child if the parent ends first.
        execution_timeout: Limit of the child's whole run.
        search_attributes: The child's search attributes (as ``Client.start`` takes
            them).

    Raises:
        InvalidArgumentError: (at the call) an empty id, one with control characters or
            over 1,000 characters, an unknown ``parent_close``, an execution timeout
            that is not a positive finite duration, or a search attribute refused (as
            :func:`upsert_search_attributes` refuses it). Nothing is recorded.
        WorkflowNotFoundError: (at the call) no workflow of that name is registered.
        TypeError: (at the call) ``workflow`` is neither a workflow nor a name.
        WorkflowArgumentsError: (at the call) the arguments do not fit the child's
            signature or type hints.
        ChildWorkflowError: (at the await) the child failed, was cancelled, terminated
            or timed out.
    """
    inst = _instance("execute_child")
    wf = lookup_workflow(workflow) if isinstance(workflow, str) else workflow
    if not isinstance(wf, Workflow):
        raise TypeError(f"execute_child() takes a @duro.workflow or its registered name, "
                        f"not {workflow!r}")
    if id is not None:
        check_id(id)
    timeout = check_seconds(execution_timeout, "execution_timeout")
    attributes = check_search_attributes(search_attributes)
    fut = inst.schedule_child(wf, args, kwargs, workflow_id=id,
                              parent_close=parent_close, execution_timeout=timeout,
                              search_attributes=attributes)

    async def wait() -> Any:
        return await fut

    return wait()

