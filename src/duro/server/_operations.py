"""Durable RPC over HTTP (docs/rpc.md): the callee's operation routes and the caller's
callback route.

``POST /v1/operations/{name}`` starts an exposed workflow as an operation, idempotently
by the caller's operation id (the wrapper run ``duro.operation``: ``rpc/_operation.py``);
``GET /v1/operations/{name}/{operation_id}`` reads its state (``?wait=`` up to 60 s: a
long poll, answered as soon as the operation ends), ``POST .../cancel`` asks it
to cancel (a cancelled caller's ``duro.call`` does). A workflow that is not
exposed (``@duro.workflow(expose=True)`` in a module this server imported, or ``duro serve
--expose NAME``) is not found there (404 ``operation_not_found``), whatever the token.

``POST /v1/callbacks`` takes an operation's outcome from the callee: its signature
(``Duro-Signature``: HMAC-SHA256 of the raw body under the call's key, derived from this
deployment's callback secret and where the outcome goes) is checked before anything is
read into a run, and the outcome reaches the calling run as a signal whose id is the
operation id, so a replayed callback is recorded once and changes nothing.
"""

from __future__ import annotations

import contextlib
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from duro._checks import check_id, check_namespace, shown
from duro.errors import (
    InvalidArgumentError,
    OperationNotFoundError,
    RunNotFoundError,
    WorkflowNotFoundError,
)
from duro.rpc import CALLBACK_SIGNATURE_HEADER
from duro.rpc._endpoint import signal_name
from duro.rpc._state import check_callback, outcome_problem
from duro.server._problems import (
    BadRequest,
    NotEnabled,
    body_of,
    field,
    json,
    path_id,
    query_float,
    raw_body,
)
from duro.server._routes import Api
from duro.server._runs import MAX_WAIT, until_stopping
from duro.workflow._api import lookup_workflow

__all__ = ["callback", "cancel_operation", "get_operation", "start_operation"]

_START = frozenset({"operation_id", "args", "kwargs", "callback"})
_CALLBACK_FIELDS = frozenset({"url", "key", "namespace", "workflow_id"})


def _exposed(api: Api, name: str) -> None:
    """Refuse a name this deployment does not expose (404 ``operation_not_found``)."""
    if name in api.exposed:
        return
    try:
        if lookup_workflow(name).exposed:
            return
    except WorkflowNotFoundError:
        pass
    raise OperationNotFoundError(f"this deployment exposes no operation named {name!r}")


async def start_operation(request: Request, api: Api) -> Response:
    name = path_id(request, "name", "operation name")
    _exposed(api, name)
    body = await body_of(request, _START)
    operation_id = check_id(field(body, "operation_id", str, required=True), "operation id",
                            limit=200)
    args = field(body, "args", list, [])
    kwargs = field(body, "kwargs", dict, {})
    back = _callback_of(field(body, "callback", dict))
    state = await api.client.operations.begin(name, operation_id, args, kwargs, back)
    return json(state.to_json(), 202)


def _callback_of(raw: dict[str, Any] | None) -> dict[str, str] | None:
    if raw is None:
        return None
    if set(raw) != _CALLBACK_FIELDS or not all(isinstance(v, str) for v in raw.values()):
        raise BadRequest(f"'callback' must have the string fields "
                         f"{', '.join(sorted(_CALLBACK_FIELDS))}")
    if not raw["url"].startswith(("http://", "https://")):
        raise BadRequest("'callback.url' must be an http:// or https:// URL")
    try:
        bytes.fromhex(raw["key"])
    except ValueError:
        raise BadRequest("'callback.key' must be hexadecimal") from None
    return dict(raw)


async def get_operation(request: Request, api: Api) -> Response:
    name = path_id(request, "name", "operation name")
    _exposed(api, name)
    operation_id = path_id(request, "operation_id", "operation id")
    wait = query_float(request, "wait", 0.0)
    if wait > MAX_WAIT:
        raise InvalidArgumentError(f"wait must be at most {MAX_WAIT:g} seconds, not "
                                   f"{shown(request.query_params['wait'])}")
    operations = api.client.operations
    if wait > 0:
        # A long poll: answered when the operation ends, or when the wait has passed,
        # or when the server stops (then with the state as it is: the caller asks again).
        with contextlib.suppress(TimeoutError):
            state = await until_stopping(api, operations.get(name, operation_id, wait=wait))
            return json(state.to_json())
    return json((await operations.get(name, operation_id)).to_json())


async def cancel_operation(request: Request, api: Api) -> Response:
    name = path_id(request, "name", "operation name")
    _exposed(api, name)
    operation_id = path_id(request, "operation_id", "operation id")
    # Cancelling the wrapper cancels the exposed workflow's run (its child) with it; an
    # operation that ended already stays as it ended.
    state = await api.client.operations.cancel(name, operation_id)
    return json(state.to_json(), 202)


async def callback(request: Request, api: Api) -> Response:
    if api.callback_secret is None:
        raise NotEnabled("callbacks are off: serve with a callback secret (duro serve "
                         "--callback-secret-env, docs/rpc.md)")
    body = check_callback(await raw_body(request),
                          request.headers.get(CALLBACK_SIGNATURE_HEADER), api.callback_secret)
    namespace, workflow_id, operation_id = (
        str(body[k]) for k in ("namespace", "workflow_id", "operation_id"))
    operation = body.get("operation")  # (checked with the signature)
    outcome = body.get("outcome")
    if (problem := outcome_problem(outcome)) is not None:
        raise BadRequest(problem)
    view = api.scoped(check_namespace(namespace))
    check_id(operation_id, "operation id", limit=200)
    try:
        await view.client.signal(
            workflow_id, signal_name(operation_id, operation), outcome,
            id=operation_id if operation is None else f"{operation}:{operation_id}")
    except RunNotFoundError:
        raise RunNotFoundError(f"no live run {workflow_id!r} waits for operation "
                               f"{operation_id!r}") from None
    return json({"operation_id": operation_id, "accepted": True})
