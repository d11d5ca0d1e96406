"""Signalling and cancelling another workflow from workflow code, durably and exactly once.

``await duro.external_workflow(id).signal(name, payload)`` (or ``.cancel()``) issues an
operation with a sequence number, as a step does. The worker that runs it puts the
message in the other run's inbox with a delivery id made of this run's id and the
operation's number (``ExternalMeta.delivery_id``), then records ``external_sent`` (or
``external_failed`` when the other workflow has no live run) in this run's history. A
worker lost between the two sends again after its replay, with the same id: the other
run's chain takes a delivery id once, so the message arrives once, and the outcome is
recorded once. On replay the recorded outcome answers the ``await``; nothing is sent.
"""

from __future__ import annotations

import asyncio
from typing import Any

from duro._checks import check_id
from duro._history import EventKind
from duro._messages import MessageKind
from duro.errors import ErrorInfo, RunNotFoundError
from duro.serde import encode
from duro.workflow._api import _instance
from duro.workflow._commands import ExternalCommand

__all__ = ["ExternalWorkflowHandle", "apply_external", "external_workflow"]


class ExternalWorkflowHandle:
    """Another workflow, as workflow code reaches it: :func:`external_workflow`."""

    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id

    def __repr__(self) -> str:
        return f"<duro.ExternalWorkflowHandle {self.workflow_id!r}>"

    async def signal(self, name: str, payload: Any = None) -> None:
        """Send a signal to the other workflow's live run, exactly once (recorded in
        this run's history: a replay does not send it again).

        Raises:
            RunNotFoundError: The other workflow has no live run (recorded: a replay
                raises it again).
            SerializationError: The payload cannot be stored as JSON.
            InvalidArgumentError: An empty or malformed signal name.
        """
        check_id(name, "signal name")
        data = encode(payload, what=f"the payload of signal {name!r}")
        await _send(MessageKind.SIGNAL, self.workflow_id, name, data)

    async def cancel(self) -> None:
        """Ask the other workflow's live run to cancel, exactly once (as
        ``client.cancel``: it gets ``asyncio.CancelledError`` at its next ``await``).

        Raises:
            RunNotFoundError: The other workflow has no live run.
        """
        await _send(MessageKind.CANCEL, self.workflow_id, None, None)


def external_workflow(workflow_id: str) -> ExternalWorkflowHandle:
    """Another workflow of this run's namespace, to signal or cancel from workflow code::

        await duro.external_workflow("order-42").signal("paid", {"amount": 12})
        await duro.external_workflow("order-43").cancel()

    Each call is an operation of this run, recorded in its history and done exactly
    once (not a step: no engine is opened, nothing runs again on replay).

    Raises:
        InvalidArgumentError: An empty or malformed workflow id.
        RuntimeError: Not called from workflow code.
    """
    _instance("external_workflow")
    return ExternalWorkflowHandle(check_id(workflow_id))


async def _send(message: str, workflow_id: str, name: str | None, data: bytes | None) -> None:
    inst = _instance("external_workflow")
    op = inst._issue("external", name)
    fut: asyncio.Future[None] = inst.loop.create_future()
    cmd = ExternalCommand(op=op, message=message, workflow_id=workflow_id, name=name,
                          data=data, future=fut)
    inst.commands[op] = cmd
    if not inst.replaying:
        inst.host.external_issued(inst, cmd)
    await fut


def apply_external(cmd: ExternalCommand, kind: str, data: bytes | None) -> None:
    """The recorded outcome of a message to another workflow answers its ``await``."""
    cmd.state = "done"
    if cmd.future.done():  # the workflow stopped waiting (it was cancelled)
        return
    if kind == EventKind.EXTERNAL_SENT:
        cmd.future.set_result(None)
        return
    error = ErrorInfo.from_payload(data)
    what = "signal" if cmd.message == MessageKind.SIGNAL else "cancel request"
    cmd.future.set_exception(RunNotFoundError(
        f"could not send {what} to workflow {cmd.workflow_id!r}: {error.message}"))
