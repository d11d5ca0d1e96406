"""Durable RPC between deployments (docs/rpc.md).

A deployment exposes workflows as operations (``@duro.workflow(expose=True)``), served by
``duro serve`` at ``/v1/operations/{name}``; another deployment's workflow calls one with
``await duro.call(endpoint, name, *args)``: ``_call.py`` (the caller's side: the call as
an operation of the run, the remote start and the polling as a step, the callback as a
signal), ``_operation.py`` (the callee's side: the operation as a wrapper run that runs the
exposed workflow as its child and delivers the signed callback), ``_endpoint.py`` (where
to call, and the callback's signature), ``_state.py`` (an operation's state, and the
check of a callback received outside a workflow).
"""

from __future__ import annotations

from duro.rpc._call import call
from duro.rpc._endpoint import (
    CALLBACK_SIGNATURE_HEADER,
    Endpoint,
    callback_key,
    operation_workflow_id,
    sign,
)
from duro.rpc._operation import OPERATION_WORKFLOW, operation_state
from duro.rpc._state import OperationState, verify_callback

__all__ = ["CALLBACK_SIGNATURE_HEADER", "OPERATION_WORKFLOW", "Endpoint", "OperationState",
           "call", "callback_key", "operation_state", "operation_workflow_id", "sign",
           "verify_callback"]
