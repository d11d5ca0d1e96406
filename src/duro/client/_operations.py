"""``client.operations``: start, read and cancel exposed operations (docs/rpc.md) from
outside any workflow, with the outcome posted to a callback URL of the caller's choosing.

Embedded, the client starts the operation in its own store (the callee's: its worker
runs it); through a server (:class:`~duro.client.RemoteClient`, the usual case: another
deployment's ``duro serve``) the same calls are its ``/v1/operations`` routes. The callback
is signed with a key derived from the caller's secret and the operation id (the secret
never leaves the caller): check it with :func:`duro.rpc.verify_callback`.
"""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson

from duro._checks import check_id, check_seconds
from duro.errors import (
    DuroError,
    InvalidArgumentError,
    RunNotFoundError,
    WorkflowNotFoundError,
)
from duro.rpc._endpoint import callback_key, operation_workflow_id
from duro.rpc._state import OperationState
from duro.serde import encode

if TYPE_CHECKING:
    from duro.client._client import Client
    from duro.client._handle import WorkflowHandle

__all__ = ["Operations", "outside_callback"]


def outside_callback(url: str | None, secret: str | bytes | None, operation_id: str,
                     operation: str | None = None) -> dict[str, str] | None:
    """The ``callback`` of a start from outside a workflow: the URL as given, and the key
    of this operation id only (no calling run: empty namespace and workflow id)."""
    if url is None:
        if secret is not None:
            raise InvalidArgumentError("callback_secret without a callback_url")
        return None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise InvalidArgumentError(f"callback_url must be an http:// or https:// URL, "
                                   f"not {url!r}")
    if not secret or not isinstance(secret, str | bytes):
        raise InvalidArgumentError("a callback_url needs a callback_secret (a non-empty "
                                   "str or bytes): the callee signs the callback with a "
                                   "key derived from it")
    raw = secret.encode() if isinstance(secret, str) else secret
    return {"url": url, "key": callback_key(raw, "", "", operation_id, operation).hex(),
            "namespace": "", "workflow_id": ""}


_UNSTARTED_CHILD = 0.5
"""Seconds a long poll waits on a wrapper run that has not started its child yet before
it looks again: the child usually follows in milliseconds, and its end (not the
wrapper's, which may then deliver a callback for minutes) is the operation's."""


class Operations:
    """``client.operations``: a deployment's exposed operations, started from outside a
    workflow (a workflow calls them with ``duro.call``)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    async def start(self, name: str, *args: Any, operation_id: str,
                    callback_url: str | None = None,
                    callback_secret: str | bytes | None = None,
                    **kwargs: Any) -> OperationState:
        """Start an exposed operation, once per ``operation_id``.

        The same id again is the same operation (its current state is returned), so a
        start may be retried after any failure.

        Args:
            name: The exposed workflow's name.
            *args: Its arguments (JSON values; keyword arguments too).
            operation_id: The caller's idempotency key for this operation.
            callback_url: Where the callee posts the outcome when the operation ends
                (retried with backoff for about ten minutes), signed with
                ``Duro-Signature``; check it with :func:`duro.rpc.verify_callback`.
            callback_secret: The secret that signature's key is derived from (required
                with ``callback_url``; it is not sent).

        Returns:
            The operation's state (usually ``running``).

        Raises:
            InvalidArgumentError: An empty or overlong name or id, a callback URL that
                is not http(s), a callback URL without a secret. Nothing is started.
            SerializationError: An argument is not JSON.
            OperationNotFoundError: (through a server) The callee exposes no such
                operation.
        """
        check_id(name, "operation name", limit=200)
        check_id(operation_id, "operation id", limit=200)
        callback = outside_callback(callback_url, callback_secret, operation_id, name)
        # What is sent is what was checked: the arguments as duro encodes them (bytes as
        # base64, a set as a list, a model as its JSON...), as duro.call sends them, not
        # the objects given (which a server's JSON body could not carry).
        sent = orjson.loads(encode({"args": list(args), "kwargs": kwargs},
                                   what=f"the arguments of operation {name!r}"))
        return await self.begin(name, operation_id, sent["args"], sent["kwargs"], callback)

    async def begin(self, name: str, operation_id: str, args: list[Any],
                    kwargs: dict[str, Any], callback: dict[str, str] | None
                    ) -> OperationState:
        """Start it with arguments checked already and a callback as the route takes it
        (``duro serve``'s ``POST /v1/operations/{name}`` ends here)."""
        from duro.rpc._operation import OPERATION_WORKFLOW
        from duro.workflow._api import lookup_workflow

        try:
            wf = lookup_workflow(name)
        except WorkflowNotFoundError:
            pass  # not imported here (exposed by name only): its worker checks them
        else:
            wf.check_arguments(args, kwargs, what=f"operation {name!r} called")
        workflow_id = operation_workflow_id(name, operation_id)
        await self._client.start(OPERATION_WORKFLOW, name, operation_id, args, kwargs,
                                 callback, id=workflow_id)
        return await self.get(name, operation_id)

    async def get(self, name: str, operation_id: str, *,
                  wait: float | timedelta = 0.0) -> OperationState:
        """The operation's state: ``running``, or its outcome.

        Args:
            name: The exposed workflow's name.
            operation_id: The caller's operation id.
            wait: Seconds to wait for the operation to end when it runs (a long poll):
                the answer comes as soon as it ends, or when ``wait`` has passed, with
                its state then. 0 (the default): at once.

        Raises:
            RunNotFoundError: No operation of that name with that id.
            InvalidArgumentError: An empty or overlong name or id, a negative or
                non-finite ``wait``.
        """
        check_id(operation_id, "operation id", limit=200)
        workflow_id = operation_workflow_id(check_id(name, "operation name", limit=200),
                                            operation_id)
        seconds = check_seconds(wait, "wait", zero=True) or 0.0
        deadline = time.monotonic() + seconds
        while True:
            state, running, unstarted = await self._read(workflow_id, operation_id)
            left = deadline - time.monotonic()
            if state.done or left <= 0 or running is None:
                return state
            # Until it ends, waiting as a client's result() waits (woken at the end when
            # this process's worker runs it, else reading the store with a backoff up to
            # 0.5 s); how it ended is read again above (its error is no error here).
            with contextlib.suppress(TimeoutError, DuroError):
                await running.result(timeout=min(left, _UNSTARTED_CHILD) if unstarted
                                     else left)

    async def _read(self, workflow_id: str, operation_id: str
                    ) -> tuple[OperationState, WorkflowHandle[Any] | None, bool]:
        """The state, and the run whose end would change it, with whether it is the
        wrapper still to start its child: the child once there (the wrapper's own end
        follows it, or its callback's delivery; a wrapper cancelled or terminated
        meanwhile takes its child along), else the wrapper."""
        from duro.rpc._operation import child_workflow_id, operation_state

        wrapper_handle = self._client.get_handle(workflow_id)
        wrapper = await wrapper_handle.describe()
        child_handle = self._client.get_handle(child_workflow_id(workflow_id))
        try:
            child = await child_handle.describe()
        except RunNotFoundError:
            child = None
        running: WorkflowHandle[Any] | None = None
        if child is not None and not child.status.is_terminal:
            running = child_handle
        elif child is None and not wrapper.status.is_terminal:
            running = wrapper_handle
        return operation_state(operation_id, wrapper, child), running, child is None

    async def cancel(self, name: str, operation_id: str) -> OperationState:
        """Ask the operation to cancel (its run, then the exposed workflow's); one that
        ended already stays as it ended. Its state after the request.

        A cancel of an id that was never started is recorded: the operation's run is
        made, cancelled before it starts anything, so that a start of that id still on
        its way (a caller's, held by a slow proxy past its timeout, whose cancel came
        first) finds the operation cancelled and runs nothing.

        Raises:
            InvalidArgumentError: An empty or overlong name or id (nothing is recorded).
        """
        from duro.rpc._operation import OPERATION_WORKFLOW

        workflow_id = operation_workflow_id(check_id(name, "operation name", limit=200),
                                            check_id(operation_id, "operation id",
                                                     limit=200))
        try:
            state = await self.get(name, operation_id)
        except RunNotFoundError:
            # The same workflow id as a start's: whichever comes first is the run (a
            # start that won this race is cancelled below like any other).
            await self._client.start(OPERATION_WORKFLOW, name, operation_id, [], {}, None,
                                     cancelled_before_start=True, id=workflow_id)
            state = await self.get(name, operation_id)
        if state.done:
            return state  # decided (its callback may still be on its way): not undone
        with contextlib.suppress(RunNotFoundError):  # it ended meanwhile
            await self._client.cancel(workflow_id)
        return await self.get(name, operation_id)
